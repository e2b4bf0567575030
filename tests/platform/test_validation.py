"""Refusals of values that cannot work, through the CLI: infinity and NaN in configs, plugin
sections and command-line options, seeds out of range, a precision or accelerator the machine
cannot run, an empty --out (issue 16, item 5). Each ends with exit code 2 and one `error:` line
naming the key and the fix, before anything is written."""

from __future__ import annotations

import pytest
import torch
import toyplug.plugin
from conftest import TINY
from typer.testing import CliRunner

from diffcore.cli import app
from diffcore.platform import config as cfgmod
from diffcore.registry import registered_plugin

SEED_MAX = 2**32 - 1


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def refused(res, start: str, *fix: str) -> str:
    """Exit code 2, one `error:` line that starts with `error: <start>` and holds each `fix`."""
    assert res.exit_code == 2, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {start}"), res.stderr
    for text in fix:
        assert text in errors[0], errors[0]
    assert "Traceback" not in res.output
    return errors[0]


@pytest.fixture(scope="module")
def toy():
    with registered_plugin(toyplug.plugin, "toy"):
        yield


@pytest.fixture(scope="module")
def run(toy, tmp_path_factory):
    """One tiny trained toy run for the sampling refusals."""
    out = tmp_path_factory.mktemp("validation") / "run"
    res = invoke("train", "--plugin", "toy", "--out", str(out), *TINY, "--threads", "1")
    assert res.exit_code == 0, res.output
    return out


FINITE = "Input should be a finite number"


@pytest.mark.parametrize("item, key", [
    ("training.lr=.inf", "training.lr"),
    ("sampling.guidance=.inf", "sampling.guidance"),
    ("sampling.clip_x0=.nan", "sampling.clip_x0"),
    ("sampling.times=[0.9, .nan]", "sampling.times.1"),
    ("sampling.options.eta=.inf", "sampling.options.eta"),           # a free-form mapping
    ("diffusion.schedule_options.num_steps=-.inf", "diffusion.schedule_options.num_steps"),
    ("data.spread=.inf", "data.spread"),                             # the plugin's own model
    ("data.spread=inf", "data.spread"),                              # a string pydantic turns into inf
])
def test_non_finite_config_values_are_refused(toy, tmp_path, item, key):
    out = tmp_path / "run"
    refused(invoke("train", "--plugin", "toy", "--out", str(out), "--set", item), f"{key}: {FINITE}")
    assert not out.exists()


def test_non_finite_in_a_config_file(toy, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("plugin: toy\nsampling:\n  guidance: .inf\n")
    refused(invoke("train", "--config", str(cfg), "--out", str(tmp_path / "run")), f"sampling.guidance: {FINITE} (got inf)")


@pytest.mark.parametrize("args, start", [
    (["--guidance", "inf"], f"--guidance: {FINITE} (got inf)"),
    (["--guidance", "nan"], f"--guidance: {FINITE} (got nan)"),
    (["--guidance", "-1"], "--guidance: must be >= 0 (got -1.0)"),
    (["--eta", "inf"], f"--option: {FINITE} (got inf for eta)"),
    (["--option", "eta=.nan"], f"--option: {FINITE} (got nan for eta)"),
    (["--option", "eta=inf"], "--option: option eta must be finite, got inf"),  # the string "inf", converted by the table
    (["--times", "0.9,nan"], f"--times: {FINITE} (got nan for item 1)"),
    (["--scale", "inf"], f"--scale: {FINITE} (got inf)"),                  # the domain's sample options
    (["--seed", str(SEED_MAX + 1)], f"--seed {SEED_MAX + 1}: out of range; use an integer from 0 to {SEED_MAX}"),
    (["--seed", "-1"], "--seed -1: out of range"),
    (["--seed", str(2**63)], f"--seed {2**63}: out of range"),
    (["--seed", "x"], "--seed 'x': expected an integer from 0"),
    (["--out", ""], "--out is empty; give a folder"),
    (["--out", "  "], "--out is empty"),
    (["--out", "confs.sdf"], "--out confs.sdf: --out is a folder (the command writes its files and their record in it), "
                             "and 'confs.sdf' looks like a file name; give a folder, e.g. --out confs"),
    (["--out", "a/B.PNG"], "--out a/B.PNG: --out is a folder"),
    (["--set", "data.num=3"], "--set data.num: not a sampling setting of this run's 'toy2d' domain (those are: none)"),
    (["--set", "sampling.steps=3"], "--set sampling.steps: only the run's sampling settings can be changed here (data.KEY=VALUE"),
    (["--set", "data.num"], "--set 'data.num': expected data.KEY=VALUE, e.g. --set data.sampling_pool=5"),
])
def test_sample_refusals(run, tmp_path, monkeypatch, args, start):
    monkeypatch.chdir(tmp_path)
    refused(invoke("sample", "--run", str(run), "--num", "2", *args), start)
    assert not (run / "samples").exists() and list(tmp_path.iterdir()) == []


def test_evaluate_refusals_and_the_largest_seed(run, tmp_path):
    refused(invoke("evaluate", "--run", str(run), "--seed", str(2**64)), f"--seed {2**64}: out of range")
    refused(invoke("evaluate", "--run", str(run), "--guidance", "inf"), f"--guidance: {FINITE}")
    res = invoke("sample", "--run", str(run), "--num", "2", "--steps", "2", "--seed", str(SEED_MAX), "--out", str(tmp_path / "s"))
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("args, start", [
    (["--seed", str(SEED_MAX + 1)], f"training.seed: Input should be less than or equal to {SEED_MAX}"),
    (["--seed", str(2**63)], "training.seed: Input should be less than or equal to"),
    (["--set", "training.seed=-1"], "training.seed: Input should be greater than or equal to 0"),
])
def test_train_seed_range(toy, tmp_path, args, start):
    refused(invoke("train", "--plugin", "toy", "--out", str(tmp_path / "run"), *args), start)
    assert not (tmp_path / "run").exists()


def test_largest_training_seed_resolves(toy):
    assert cfgmod.resolve("toy", flags={"training": {"seed": SEED_MAX}}).config.training.seed == SEED_MAX


def test_train_refuses_an_empty_out(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(invoke("train", "--plugin", "toy", "--out", ""), "--out is empty; give a folder")
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


def test_out_named_like_a_file_is_refused_unless_it_is_a_folder_already(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(invoke("train", "--plugin", "toy", "--out", "run.yaml"), "--out run.yaml: --out is a folder")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "exp.json").mkdir()  # a folder of that name: the user's choice, as before
    res = invoke("train", "--plugin", "toy", "--out", "exp.json", "--max-steps", "1")
    assert "looks like a file name" not in res.output
    assert (tmp_path / "exp.json" / "config.yaml").is_file(), res.output
    res = invoke("train", "--plugin", "toy", "--out", "exp2.json/", "--max-steps", "1")  # a trailing slash: a folder
    assert (tmp_path / "exp2.json" / "config.yaml").is_file(), res.output
    refused(invoke("sample", "--run", "exp.json", "--out", "my samples.npz"), "--out my samples.npz: --out is a folder")
    assert "e.g. --out 'my samples'" in invoke("sample", "--run", "exp.json", "--out", "my samples.npz").stderr
    refused(invoke("evaluate", "--run", "exp.json", "--list", "--set", "data.x=1"), "--list prints the recorded evaluations and takes no --set")


@pytest.mark.parametrize("cuda, args, start, fix", [
    (False, ["--precision", "16-mixed"], "training.precision: 16-mixed (float16) needs a CUDA GPU", "use --precision 32-true, or bf16-mixed"),
    (True, ["--precision", "16-true"], "training.precision: 16-true (float16) needs a CUDA GPU", "(training.accelerator: cpu)"),
    (False, ["--precision", "16-mixed", "--accelerator", "auto"], "training.precision: 16-mixed", "use --precision 32-true"),
    (False, ["--accelerator", "gpu"], "training.accelerator: 'gpu' needs a CUDA GPU", "use --accelerator cpu"),
    (False, ["--accelerator", "cuda", "--precision", "16-mixed"], "training.accelerator: 'cuda' needs a CUDA GPU", "use --accelerator cpu"),
    (True, ["--accelerator", "gpu", "--devices", "2"], "training.devices: 2 GPUs asked, and this machine has 1", "use --devices 1"),
])
def test_precision_and_accelerator_the_machine_cannot_run(toy, tmp_path, monkeypatch, cuda, args, start, fix):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(cuda))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    refused(invoke("train", "--plugin", "toy", "--out", str(tmp_path / "run"), *args), start, fix)
    assert not (tmp_path / "run").exists()
