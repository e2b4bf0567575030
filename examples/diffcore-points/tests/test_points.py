"""The plugin's own tests, as a plugin author writes them: diffcore's conformance kit checks
every hook, the domain, both backbones, the sampler and the schedule, and says what to fix.

    pip install -e examples/diffcore-points && pytest examples/diffcore-points/tests
"""

import diffcore.testing

import diffcore_points.plugin


def test_points_plugin_conforms():
    diffcore.testing.check_plugin(
        diffcore_points.plugin,
        name="points",
        domain_options={"points": {"num": 256}, "image": {"resolution": 8}},  # small data: seconds
        backbone_options={"image-mlp": {"width": 32, "depth": 1}},
        edit_inputs={"points": ["0.5,", ",-0.25", "1,2"]},  # y given x, x given y, a whole point
        edit_options={"points": {"keep": "given"}},
        evaluate=True,
    )


def test_each_data_set_conforms():
    from diffcore_points.domain import PointsDomain

    for name in ("two-moons", "swiss-roll", "8-gaussians"):
        diffcore.testing.check_domain(PointsDomain, options={"dataset": name, "num": 128})


# ------------------------------------------------------------------ editing (diffcore edit)
# Plain functions without fixtures: diffcore's own suite calls them one by one.
def _domain():
    from diffcore_points.domain import PointsDomain

    domain = PointsDomain(PointsDomain.Options(num=256))
    domain.setup()
    return domain


def test_edit_batches_keep_what_the_input_gives():
    import tempfile
    from pathlib import Path

    import numpy as np
    import torch

    from diffcore_points.editing import PointsEditOptions

    domain = _domain()
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "points.csv"
        csv.write_text("x,y,label\n0.5,,upper\n1.0,0.25,lower\n")  # y of the first point is generated
        batches = list(domain.edit_batches([str(csv), "-0.5,nan"], num=3, batch_size=4))
    assert [b["shape"] for b in batches] == [(4, 2), (4, 2), (1, 2)]  # 3 points x 3 outputs, in batches of 4
    known, keep = torch.cat([b["known"] for b in batches]), torch.cat([b["keep"] for b in batches])
    assert keep.tolist() == [[1, 0]] * 3 + [[1, 1]] * 3 + [[1, 0]] * 3
    x = torch.tensor(domain.denormalise(known.double().numpy()))
    assert torch.allclose(x[:, 0], torch.tensor([0.5] * 3 + [1.0] * 3 + [-0.5] * 3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(x[3:6, 1], torch.full((3,), 0.25, dtype=torch.float64), atol=1e-6)
    assert known[:3, 1].abs().max() == 0 and all("cond" not in b for b in batches)  # no --class: no label
    assert np.concatenate([b["source"] for b in batches]).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]

    # --keep y keeps only y (here given for every point); --class cycles the outputs' class
    (b,) = domain.edit_batches(["0.1,0.2", "0.3,0.4"], num=2, batch_size=8, classes=[1],
                               options=PointsEditOptions(keep="y"))
    assert b["keep"].tolist() == [[0, 1]] * 4 and b["cond"].tolist() == [1] * 4 and b["labels"] == ["lower"] * 4
    (b,) = domain.edit_batches(["0.1,0.2"], num=2, batch_size=8, options=PointsEditOptions(keep="none"))
    assert b["keep"].sum() == 0


def test_edit_bad_inputs_say_which_and_how_to_fix():
    import tempfile
    from pathlib import Path

    import numpy as np
    import pytest

    from diffcore.errors import UserError
    from diffcore_points.editing import PointsEditOptions

    domain = _domain()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "ab.csv").write_text("a,b\n1,2\n")
        (tmp / "word.csv").write_text("x,y\n1,2\n3,oops\n")
        (tmp / "one.csv").write_text("0.5\n")
        np.save(tmp / "three.npy", np.zeros((4, 3)))
        (tmp / "nox.csv").write_text("x,y\n1,2\n,3\n")
        cases = {
            str(tmp / "missing.csv"): ("missing.csv: no such file",),
            "0.5;1": ("0.5;1: no such file, and not a point X,Y", "--input 0.5,"),
            str(tmp / "ab.csv"): ("ab.csv: the header a,b has no columns x and y",),
            str(tmp / "word.csv"): ("word.csv line 3: 'oops' is not a number", "nan"),
            str(tmp / "one.csv"): ("one.csv line 1: 1 column(s)",),
            str(tmp / "three.npy"): ("three.npy: an array of float64 with shape [4, 3]", "[n, 2]"),
            "inf,0": ("an infinite coordinate",),
        }
        for spec, fragments in cases.items():
            with pytest.raises(UserError) as err:
                list(domain.edit_batches([spec], 1, 8))
            assert all(f in str(err.value) for f in fragments), (spec, str(err.value))
        with pytest.raises(UserError, match=r"nox.csv \(point 2\) gives no x, which --keep x keeps"):
            list(domain.edit_batches([str(tmp / "nox.csv")], 1, 8, options=PointsEditOptions(keep="x")))


def test_write_edits_writes_the_points_and_a_before_after_picture():
    import csv
    import tempfile
    from pathlib import Path

    import torch

    domain = _domain()
    results = [(torch.where(b["keep"] > 0, b["known"], torch.randn(b["shape"])), b)
               for b in domain.edit_batches(["0.5,", ",0.25", "1,1"], num=5, batch_size=6)]
    with tempfile.TemporaryDirectory() as tmp:
        paths = domain.write_edits(results, Path(tmp))
        assert sorted(p.name for p in paths) == ["edit.png", "samples.csv", "samples.png"]
        assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths if p.suffix == ".png")
        rows = list(csv.DictReader(open(Path(tmp) / "samples.csv")))
    assert len(rows) == 15  # 5 outputs per input point, in input order
    assert {r["x"] for r in rows[:5]} == {"0.500000"} and {r["y"] for r in rows[5:10]} == {"0.250000"}
    assert {(r["x"], r["y"]) for r in rows[10:]} == {("1.000000", "1.000000")}


def test_exact_conditional_reference():
    """data.conditional, the reference the README measures inpainting against, on the 8
    Gaussians (std 0.1, radius 2) where p(y | x) is known in closed form: given x = 0, y is
    N(2, 0.1^2) or N(-2, 0.1^2) with probability 1/2 each; given x = 2, N(0, 0.1^2)."""
    import numpy as np

    from diffcore_points.data import conditional

    y = conditional("8-gaussians", None, 0, 0.0, 20_000, seed=0)
    up = y > 0
    assert abs(up.mean() - 0.5) < 0.015 and abs(y[up].mean() - 2) < 0.005 and abs(y[up].std() - 0.1) < 0.005
    y = conditional("8-gaussians", None, 0, 2.0, 20_000, seed=0)
    assert abs(y.mean()) < 0.005 and abs(y.std() - 0.1) < 0.005
    y = conditional("8-gaussians", None, 1, 1.9, 5_000, seed=0, label=1)  # class NE only: x given y = 1.9
    assert abs(y.mean() - 2**0.5) < 0.01
