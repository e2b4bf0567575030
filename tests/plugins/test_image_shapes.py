"""The embedded shapes64 data set: the renderer (deterministic, balanced, labels that decode,
each shape drawn in its colour), its options, the evaluate-time metric CNN (accurate on
held-out renders; real renders score ~1, wrong classes and noise clearly worse), and tiny
train -> sample -> evaluate runs from the CLI, on shapes64 and on a folder of 64x64 colour
PNGs (data.path)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

from diffcore.cli import app
from diffcore_image import metrics as _metrics
from diffcore_image import shapes
from diffcore_image.data import split
from diffcore_image.domain import ImageDomain, ImageOptions
from diffcore_image.metrics import ShapesMetricModel, shapes_metrics


def test_renders_are_deterministic_balanced_and_in_range():
    x, y, params = shapes._render(96, 3)
    x2, y2, _ = shapes._render(96, 3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, shapes._render(96, 4)[0])
    assert x.shape == (96, 3, 64, 64) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert np.array_equal(np.bincount(y, minlength=24), np.full(24, 4))  # 96 = 4 of each of the 24 classes
    # one shape per image, fully inside the frame
    r, cx, cy = params["radius"], params["cx"], params["cy"]
    assert (cx - r >= 0).all() and (cx + r <= 64).all() and (cy - r >= 0).all() and (cy + r <= 64).all()
    # the shape's centre pixel has the shape's colour (the background is muted and darker or greyer)
    centre = x[np.arange(96), :, cy.astype(int), cx.astype(int)]
    assert np.abs(centre - (params["colour_rgb"] * 2 - 1)).max() < 0.02
    # the cached tensors are the same renders
    tx, ty = shapes.render_shapes(96, 3)
    assert torch.equal(tx, torch.from_numpy(x)) and torch.equal(ty, torch.from_numpy(y))


def test_labels_decode_to_shape_and_colour():
    assert len(shapes.LABELS) == shapes.NUM_CLASSES == 24 and len(set(shapes.LABELS)) == 24
    for s, shape in enumerate(shapes.SHAPES):
        for c, colour in enumerate(shapes.COLOURS):
            k = shapes.class_id(shape, colour)
            assert k == shapes.class_id(s, c) and shapes.decode(k) == (s, c)
            assert shapes.LABELS[k] == f"{colour}-{shape}"
    ys = torch.arange(24)
    s, c = shapes.decode(ys)
    assert torch.equal(s * 6 + c, ys) and shapes.LABELS[shapes.class_id("star", "red")] == "red-star"


def test_options_pick_shapes64_and_refuse_contradictions():
    o = ImageOptions(dataset="shapes64")
    assert o.resolution == 64 and o.channels is None
    assert ImageOptions(dataset="shapes64", resolution=64, channels=3).resolution == 64
    d = ImageDomain(o)
    assert d.channels == 3 and d.labels == shapes.LABELS and d._train is None  # known without rendering
    assert ImageOptions().dataset == "digits" and ImageOptions().resolution == 16
    for bad, words in [({"resolution": 32}, "data.resolution=64"), ({"channels": 1}, "data.channels=3"),
                       ({"path": "imgs"}, "data.path=null")]:
        with pytest.raises(ValidationError, match=words):
            ImageOptions(dataset="shapes64", **bad)


def test_domain_serves_shapes64_split():
    d = ImageDomain(ImageOptions(dataset="shapes64"))
    d.setup()
    assert d._train.x.shape == (4800, 3, 64, 64) and d._val.x.shape == (1200, 3, 64, 64)
    assert np.array_equal(np.bincount(d._val.y.numpy()), np.full(24, 50))  # stratified
    item = d.train_dataset()[0]
    assert item["x"].shape == (3, 64, 64) and 0 <= int(item["cond"]) < 24


@pytest.fixture(scope="module")
def fitted():
    x, y = shapes.render_shapes()
    from diffcore_image.data import ImageSet

    train, val = split(ImageSet(x, y, list(shapes.LABELS)), 0.2, 0)
    torch.set_num_threads(1)
    return ShapesMetricModel(train.x, train.y), train, val


def test_metric_cnn_is_accurate_on_held_out_renders_and_deterministic(fitted):
    model, train, val = fitted
    s, c = model.predict_parts(val.x)
    assert (s == (val.y // 6).numpy()).mean() >= 0.97
    assert (c == (val.y % 6).numpy()).mean() >= 0.99
    assert np.array_equal(model.predict(val.x[:50]), (s * 6 + c)[:50])
    feats = model.features(val.x[:8])
    assert feats.shape == (8, 128) and np.isfinite(feats).all()
    # seeded: two fits (a few steps here) give the same network, and leave the global RNG alone
    state = torch.get_rng_state()
    a, b = (ShapesMetricModel(train.x[:256], train.y[:256], steps=5) for _ in range(2))
    assert np.array_equal(a.features(val.x[:16]), b.features(val.x[:16])) and torch.equal(torch.get_rng_state(), state)


def test_metrics_real_renders_near_one_wrong_classes_and_noise_far(fitted):
    model, train, val = fitted
    g = torch.Generator().manual_seed(1)
    idx = torch.randperm(len(train.x), generator=g)
    x, y = train.x[idx[:600]], train.y[idx[:600]]
    pool = train.x[idx[600:2400]]  # the floor's real subsets come from 1,800 other training renders
    real = shapes_metrics(model, x, y, pool, val.x, val.y)
    assert real["classifier_shape_accuracy"] >= 0.97 and real["classifier_colour_accuracy"] >= 0.99
    assert real["shape_consistency"] >= 0.97 and real["colour_consistency"] >= 0.99 and real["class_consistency"] >= 0.97
    assert 0.5 < real["frechet_ratio"] < 1.6

    # asked for the next colour of the same shape: colour all wrong, shape right
    wrong = shapes_metrics(model, x, y // 6 * 6 + (y + 1) % 6, pool, val.x, val.y)
    assert wrong["colour_consistency"] == 0.0 and wrong["shape_consistency"] >= 0.97
    # asked for the next shape in the same colour
    wrong = shapes_metrics(model, x, (y + 6) % 24, pool, val.x, val.y)
    assert wrong["shape_consistency"] <= 0.05 and wrong["colour_consistency"] >= 0.99

    noise = shapes_metrics(model, torch.rand(600, 3, 64, 64, generator=g) * 2 - 1, y, pool, val.x, val.y)
    assert noise["frechet_ratio"] > 20 and noise["class_consistency"] < 0.2
    gray = shapes_metrics(model, x.mean(1, keepdim=True).expand(-1, 3, -1, -1), y, pool, val.x, val.y)
    assert gray["colour_consistency"] < 0.5 and gray["frechet_ratio"] > 20
    # blurred renders (2x2 average, upsampled): right classes, but the Fréchet distance sees it
    blur = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 2), scale_factor=2, mode="bilinear")
    blurred = shapes_metrics(model, blur, y, pool, val.x, val.y)
    assert blurred["class_consistency"] >= 0.9 and blurred["frechet_ratio"] > 2


TINY = [
    "--set", "backbone.base_channels=8", "--set", "backbone.num_res_blocks=1", "--set", "backbone.attention_resolutions=[]",
    "--set", "backbone.channel_mult=[1,2,2]", "--set", "training.batch_size=4", "--set", "training.preview_num=4",
    "--set", "sampling.steps=2", "--max-steps", "2", "--no-progress", "--accelerator", "cpu",
]


def test_cli_train_sample_evaluate_shapes64(tmp_path, monkeypatch):
    monkeypatch.setattr(_metrics, "SHAPES_STEPS", 20)  # the metric CNN: a few steps are enough to run the code
    run = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--plugin", "image-unet", "--out", str(run), "--set", "data.dataset=shapes64", *TINY])
    assert res.exit_code == 0, res.output
    state = json.loads((run / "domain_state.json").read_text())
    assert state == {"labels": shapes.LABELS, "channels": 3, "resolution": 64}
    assert Image.open(run / "previews" / "step-0000002" / "samples.png").mode == "RGB"

    out = tmp_path / "samples"
    res = runner.invoke(app, ["sample", "--run", str(run), "--num", "2", "--class", "red-star", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("*.png")) == ["00000_red-star.png", "00001_red-star.png", "samples.png"]
    assert Image.open(out / "00000_red-star.png").size == (64, 64)

    res = runner.invoke(app, ["evaluate", "--run", str(run), "--num", "24"])
    assert res.exit_code == 0, res.output
    m = json.loads((run / "metrics.json").read_text())
    for key in ("shape_consistency", "colour_consistency", "class_consistency", "classifier_shape_accuracy"):
        assert 0 <= m[key] <= 1, key
    assert m["num_samples"] == 24 and m["num_reference"] == 1200 and m["frechet_floor"] > 0


@pytest.mark.parametrize("sets, words", [
    (["data.dataset=shapes64", "data.resolution=32"], "data.resolution=64"),
    (["data.dataset=shapes64", "data.channels=1"], "data.channels=3"),
    (["data.dataset=shapes64", "data.path=imgs"], "data.path=null"),
    (["data.dataset=shapes"], "'digits' or 'shapes64'"),
])
def test_cli_refuses_contradicting_shapes64_settings_in_one_line(tmp_path, sets, words):
    args = [a for s in sets for a in ("--set", s)]
    res = CliRunner().invoke(app, ["train", "--plugin", "image-unet", "--out", str(tmp_path / "run"), *args, "--no-progress"])
    assert res.exit_code == 2 and "Traceback" not in res.output and words in res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and not (tmp_path / "run").exists()


def test_cli_trains_on_a_folder_of_64x64_colour_images(tmp_path):
    x, y = shapes.render_shapes(48, 7)
    from diffcore_image.writer import to_uint8

    for i, (img, k) in enumerate(zip(to_uint8(x), y.tolist())):
        d = tmp_path / "imgs" / shapes.LABELS[k]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i}.png")
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--plugin", "image-unet", "--out", str(run), "--set", f"data.path={tmp_path / 'imgs'}",
                                   "--set", "data.resolution=64", "--set", "data.val_fraction=0", *TINY])
    assert res.exit_code == 0, res.output
    state = json.loads((run / "domain_state.json").read_text())
    assert state == {"labels": sorted(shapes.LABELS), "channels": 3, "resolution": 64}
    # the folder's images are the renders, read back exactly (PNG, no resize at 64x64)
    d = ImageDomain(ImageOptions(path=str(tmp_path / "imgs"), resolution=64, val_fraction=0))
    d.setup()
    assert d._train.x.shape == (48, 3, 64, 64)
    first = sorted((tmp_path / "imgs" / d.labels[0]).iterdir())[0]
    i = int(first.stem)
    assert torch.allclose(d._train.x[0], torch.from_numpy(to_uint8(x[i:i + 1])[0]).permute(2, 0, 1).float() / 127.5 - 1, atol=1e-6)
