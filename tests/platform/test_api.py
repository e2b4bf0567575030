"""``diffcore.load(RUN_DIR)``: a trained run from Python, sampling as `diffcore sample` does."""

import pytest
import torch
from conftest import TINY
from typer.testing import CliRunner

import diffcore
from diffcore.platform.cli import app


@pytest.fixture
def toy_run(toy_plugin, tmp_path):
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--plugin", "toy", "--out", str(run), *TINY])
    assert res.exit_code == 0, res.output
    return run


def test_load_and_sample(toy_run, tmp_path):
    pipe = diffcore.load(toy_run, threads=1)
    assert pipe.domain.name == "toy2d" and isinstance(pipe.model, torch.nn.Module)
    assert pipe.config.training.max_steps == 4
    x = pipe.sample(6, sampler="ddim", steps=5, seed=3)
    assert x.shape == (6, 2) and torch.isfinite(x).all()
    assert torch.equal(x, pipe.sample(6, sampler="ddim", steps=5, seed=3))  # the seed fixes the noise
    assert not torch.equal(x, pipe.sample(6, sampler="ddim", steps=5, seed=4))
    # the same samples as the CLI's, which goes through the same plan
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["sample", "--run", str(toy_run), "--num", "6", "--sampler", "ddim", "--steps", "5",
                                   "--seed", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = (out / "samples.csv").read_text().splitlines()[1:]
    cli = torch.tensor([[float(v) for v in r.split(",")[:2]] for r in rows])
    assert torch.allclose(cli, x * pipe.domain.scale, atol=1e-3)  # the writer un-normalises
    # options, classes and files
    y = pipe.sample(4, sampler="ddim", steps=5, eta=1.0, cond=2)
    assert y.shape == (4, 2)
    paths = pipe.write(tmp_path / "w", 3, steps=4)
    assert paths and all(p.is_file() for p in paths)
    # a guidance variant, as the CLI's --guidance-variant: the interval variant over every time is plain CFG
    plain = pipe.sample(4, steps=5, guidance=2.0, cond=1)
    every = pipe.sample(4, steps=5, guidance=2.0, cond=1, guidance_variant="interval",
                        guidance_options={"lo": 0.0, "hi": 1e12})
    never = pipe.sample(4, steps=5, guidance=2.0, cond=1, guidance_variant="interval", guidance_options={"lo": 0.0, "hi": 0.0})
    assert torch.equal(every, plain) and torch.equal(never, pipe.sample(4, steps=5, cond=1))


def test_load_refuses_what_is_not_a_run(toy_run, tmp_path):
    with pytest.raises(diffcore.UserError, match="not a run directory"):
        diffcore.load(tmp_path)
    pipe = diffcore.load(toy_run, threads=1)
    with pytest.raises(diffcore.UserError, match="unknown sampler"):
        pipe.sample(2, sampler="nope")
    with pytest.raises(diffcore.UserError, match="does not take option"):
        pipe.sample(2, sampler="ddim", steps=3, bogus=1.0)
