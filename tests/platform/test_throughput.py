"""training.compile and training.channels_last (diffcore/platform/throughput.py): a compiled run
trains and its checkpoint holds the plain backbone (sampling loads it); a machine where
torch.compile fails is refused with one line before the run's files are written; channels-last
trains the same losses as the default format, up to rounding."""

from __future__ import annotations

import csv

import pytest
import torch
from conftest import TINY
from typer.testing import CliRunner

from diffcore.cli import app
from diffcore.platform import runs
from diffcore.platform.throughput import first_batch, to_channels_last


def invoke(*args: str):
    return CliRunner().invoke(app, [*args, "--threads", "1"])


@pytest.mark.slow  # one real compilation: a few seconds with inductor's cache, ~20 s without
def test_a_compiled_run_trains_and_its_checkpoint_holds_the_plain_backbone(toy_plugin, tmp_path):
    run = tmp_path / "run"
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--max-steps", "2", "--set", "training.compile=true")
    assert res.exit_code == 0, res.output
    assert "compiled the backbone in " in res.stdout and "trained 2 steps" in res.stdout
    ckpt = torch.load(run / runs.LAST_CKPT, weights_only=True)
    assert ckpt["global_step"] == 2
    assert not [k for k in ckpt["state_dict"] if "_orig_mod" in k]
    assert {k.removeprefix("backbone.") for k in ckpt["state_dict"] if k.startswith("backbone.")} == set(runs.read_weights(run / runs.EMA_WEIGHTS))
    for weights in ([], ["--checkpoint", str(run / runs.LAST_CKPT)]):
        res = invoke("sample", "--run", str(run), "--num", "4", "--out", str(tmp_path / f"samples{len(weights)}"), *weights)
        assert res.exit_code == 0, res.output


def test_a_failing_torch_compile_is_one_line_and_leaves_no_run(toy_plugin, tmp_path, monkeypatch):
    def no_compiler(gm, example_inputs):  # what inductor does without a working C++ compiler, quickly
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    compile_ = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compile_(self, backend=no_compiler))
    torch._dynamo.reset()
    run = tmp_path / "run"
    try:
        res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--set", "training.compile=true")
    finally:
        torch._dynamo.reset()
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: training.compile: torch.compile cannot compile the backbone on this machine ("), res.stderr
    assert "No working C++ compiler found" in res.stderr and "set training.compile=false" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not runs.holds_run(run)  # no config.yaml: the same command works once fixed


def _losses(run):
    with open(run / "metrics.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["loss"]]


def test_channels_last_trains_the_same_losses(tmp_path):
    pytest.importorskip("diffcore_image")
    tiny = ["--set", "data.resolution=8", "--set", "backbone.base_channels=8", "--set", "backbone.num_res_blocks=1",
            "--set", "backbone.attention_resolutions=[4]", "--set", "training.batch_size=8", "--set", "training.preview_num=2",
            "--set", "training.checkpoint_every=0", "--set", "training.log_every=1", "--set", "sampling.steps=2",
            "--max-steps", "3", "--no-progress", "--accelerator", "cpu"]
    for name, last in (("plain", "false"), ("cl", "true")):
        res = invoke("train", "--plugin", "image-unet", "--out", str(tmp_path / name), *tiny, "--set", f"training.channels_last={last}")
        assert res.exit_code == 0, res.output
    plain, cl = _losses(tmp_path / "plain"), _losses(tmp_path / "cl")
    assert len(plain) == 3 and plain == pytest.approx(cl, rel=1e-4)
    a, b = (runs.read_weights(tmp_path / name / runs.EMA_WEIGHTS) for name in ("plain", "cl"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a)


def test_only_4d_tensors_change_format():
    batch = {"x": torch.randn(2, 3, 4, 5), "cond": torch.tensor([1, 2]), "mask": [torch.ones(2, 1, 4, 5)], "shape": (2, 3, 4, 5)}
    out = to_channels_last(batch)
    assert out["x"].is_contiguous(memory_format=torch.channels_last) and torch.equal(out["x"], batch["x"])
    assert out["mask"][0].is_contiguous(memory_format=torch.channels_last)
    assert out["cond"] is batch["cond"] and out["shape"] == (2, 3, 4, 5)


def test_the_compile_batch_is_the_first_examples_of_an_indexed_or_streamed_set():
    from torch.utils.data import DataLoader, IterableDataset

    items = [{"x": torch.full((2,), float(i))} for i in range(10)]

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(items)

    for ds, shuffle in ((items, True), (Stream(), False)):
        assert first_batch(DataLoader(ds, batch_size=4, shuffle=shuffle))["x"][:, 0].tolist() == [0, 1, 2, 3]
    assert len(first_batch(DataLoader(items[:3], batch_size=4))["x"]) == 3  # a data set smaller than a batch
