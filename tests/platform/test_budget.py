"""What fits, checked before the work (diffcore.platform.budget; issue 16, item 6): sample counts
that are not positive integers, beyond the cap, or whose samples would not fit in memory or on
disk are refused before anything is generated; a checkpoint that would inflate far beyond what
the run's model needs, or safetensors whose shapes do not fit, are refused before their tensors
are read. Each refusal is one `error:` line naming the numbers or the file, and the fix."""

from __future__ import annotations

import io
import shutil
import time
import zipfile
from pathlib import Path

import pytest
import torch
import toyplug.plugin
from conftest import TINY
from safetensors.torch import save_file
from typer.testing import CliRunner

from diffcore.cli import app
from diffcore.errors import UserError
from diffcore.platform import budget, generation, runs
from diffcore.registry import registered_plugin


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def refused(res, *parts: str) -> str:
    """Exit code 2 and one `error:` line holding each of ``parts``; no traceback."""
    assert res.exit_code == 2, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    for text in parts:
        assert text in errors[0], errors[0]
    assert "Traceback" not in res.output
    return errors[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with registered_plugin(toyplug.plugin, "toy"):
        out = tmp_path_factory.mktemp("budget") / "run"
        res = invoke("train", "--plugin", "toy", "--out", out, *TINY, "--threads", "1")
        assert res.exit_code == 0, res.output
        yield out


@pytest.fixture
def no_generation(monkeypatch):
    """Records (and fails) any sampling batch generated."""
    calls = []

    def generate_batch(*args, **kwargs):
        calls.append(1)
        raise AssertionError("a batch was generated")

    monkeypatch.setattr(runs, "generate_batch", generate_batch)
    return calls


# ------------------------------------------------------------------ counts
@pytest.mark.parametrize("value, start", [("1e9", "--num '1e9': expected a positive integer"),
                                          ("0", "--num 0: expected a positive integer"),
                                          ("-3", "--num -3: expected a positive integer"),
                                          ("2.5", "--num '2.5': expected a positive integer"),
                                          (str(budget.MAX_SAMPLES + 1), "several runs with different --seed")])
@pytest.mark.parametrize("command", ["sample", "evaluate", "edit"])
def test_counts_that_are_not_positive_integers_or_beyond_the_cap(run, command, value, start, no_generation):
    res = invoke(command, "--run", run, "--num", value, *(["--input", "x"] if command == "edit" else []))
    refused(res, start)
    assert not no_generation


def test_the_cap_holds_for_the_python_api_too(run):
    r = runs.load_run(run)
    for bad in (0, 2.0, True, budget.MAX_SAMPLES + 1):
        with pytest.raises(UserError, match="--num"):
            generation.sample(r, r.resolved.plan, bad)


# ------------------------------------------------------------------ memory and disk
def test_samples_beyond_the_available_memory_are_refused_before_any_work(run, tmp_path, monkeypatch, no_generation):
    monkeypatch.setattr(budget, "available_memory", lambda: 100_000)  # 100 kB: 12,500 toy points of 8 bytes at most
    out = tmp_path / "out"
    line = refused(invoke("sample", "--run", run, "--num", "100000", "--out", out),
                   "--num 100000: the samples would take about 781.2 KB of memory (100000 x 2 values x 4 bytes)",
                   "97.7 KB is available", "use a smaller --num, or several runs with different --seed", "at most about 10,000")
    assert line.startswith("error: --num 100000")
    assert not out.exists() and not no_generation
    refused(invoke("evaluate", "--run", run, "--num", "100000"), "--num 100000: the samples would take about 781.2 KB")
    assert not no_generation
    # what fits is generated as before
    monkeypatch.undo()
    res = invoke("sample", "--run", run, "--num", "1000", "--steps", "2", "--out", out)
    assert res.exit_code == 0 and (out / "samples.csv").is_file(), res.output


def test_samples_beyond_the_free_disk_space_are_refused_before_any_work(run, tmp_path, monkeypatch, no_generation):
    monkeypatch.setattr(budget, "free_disk", lambda path: 1000)
    out = tmp_path / "new" / "out"
    refused(invoke("sample", "--run", run, "--num", "1000", "--out", out),
            "--num 1000: the samples would take about 7.8 KB (1000 x 2 values x 4 bytes)", f"{out} has 1000 B of free disk space",
            "or another --out")
    assert not out.exists() and not no_generation


def test_the_machine_is_measured():
    mem, free = budget.available_memory(), budget.free_disk(Path("/no/such/folder/below/root"))
    total = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    assert mem is not None and 0 < mem <= total
    assert free is not None and free > 0  # the nearest existing folder's file system


# ------------------------------------------------------------------ checkpoints
def _bomb(path, mb=80):
    """A torch checkpoint of ``mb`` MB of zeros, its members deflated (torch.save stores them):
    less than 1 MB on disk, which torch.load inflates."""
    raw = io.BytesIO()
    torch.save({"state_dict": {"ema.w": torch.zeros(mb * 2**18)}, "global_step": 1}, raw)
    raw.seek(0)
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
    return path


def test_the_bomb_is_real(tmp_path):
    # Guards the tests below: torch.load does inflate this small file to 80 MB.
    bomb = _bomb(tmp_path / "bomb.ckpt")
    assert bomb.stat().st_size < 2**20
    assert torch.load(bomb, weights_only=True)["state_dict"]["ema.w"].numel() * 4 == 80 * 2**20


def test_a_checkpoint_that_inflates_is_refused_before_it_is_read(run, tmp_path, monkeypatch):
    bomb = _bomb(tmp_path / "bomb.ckpt")
    t = time.perf_counter()
    line = refused(invoke("sample", "--run", run, "--checkpoint", bomb, "--num", "4"),
                   f"checkpoint {bomb} was refused before it was read: it would take 80.0 MB in memory",
                   "far more than this run's model needs")
    assert time.perf_counter() - t < 10, line
    r = runs.load_run(run)

    def load(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", load)
    with pytest.raises(UserError, match="refused before it was read"):
        runs.read_weights(bomb, like=r.net)
    with pytest.raises(UserError, match="inflated from .* KB on disk"):  # the model unknown (a resume): still refused
        runs.read_lightning_checkpoint(bomb)


def test_a_resume_from_an_inflating_checkpoint_is_refused(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    _bomb(copy / "checkpoints" / "last.ckpt")
    res = invoke("train", "--out", copy, "--resume", "--max-steps", "8", "--no-progress")
    refused(res, "--resume: no readable checkpoint", "checkpoints/last.ckpt could not be read", "inflated from")


def test_safetensors_that_do_not_fit_are_refused_before_their_tensors_are_read(run, tmp_path, monkeypatch):
    r = runs.load_run(run)
    state = {k: v.clone() for k, v in r.net.state_dict().items()}
    key = sorted(k for k, v in state.items() if v.dim() == 2)[0]
    state[key] = state[key][:, :-1].contiguous()  # one column fewer
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad))
    import safetensors.torch

    def load_file(*args, **kwargs):
        raise AssertionError("the tensors were read")

    monkeypatch.setattr(safetensors.torch, "load_file", load_file)
    with pytest.raises(UserError, match=f"does not fit this run's backbone: 1 shape mismatch.*{key}"):
        runs.read_weights(bad, like=r.net)
    refused(invoke("sample", "--run", run, "--checkpoint", bad, "--num", "4"), f"checkpoint {bad} does not fit", key)
    monkeypatch.undo()
    assert set(runs.read_weights(run / runs.EMA_WEIGHTS, like=r.net)) == set(state)  # the run's own weights fit
