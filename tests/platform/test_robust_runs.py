"""Runs are transactions: SIGTERM/SIGINT stop `diffcore train` with a resumable checkpoint, a run
directory has one writer at a time, a failed resume writes nothing, a resume falls back to the
newest readable step=N.ckpt, and run files are replaced whole."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY, cli_env
from typer.testing import CliRunner

from diffcore.cli import app
from diffcore.platform import runfiles

THREADS = ["--threads", "1"]


def invoke(*args: str):
    return CliRunner().invoke(app, [*args, *THREADS])


def _steps(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["global_step"])


def _metric_steps(run: Path) -> list[int]:
    with open(run / "metrics.csv") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r["loss"]]


def _leftovers(run: Path) -> list[Path]:
    return [p for p in run.rglob(".*") if p.is_file()]


def _wait(proc: subprocess.Popen, ready, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"`diffcore train` ended (rc {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _rows(run: Path) -> int:
    try:
        return len(_metric_steps(run))
    except (OSError, KeyError, ValueError, TypeError):  # a row being written
        return 0


def test_sigterm_writes_a_checkpoint_and_the_run_resumes_to_the_same_final_step(toy_site, toy_plugin, tmp_path):
    """A real `diffcore train` process: a second train into its --out is refused naming its pid;
    SIGTERM after a few steps: exit 143, one line saying how to resume, last.ckpt; --resume then
    reaches max_steps with every step in metrics.csv exactly once. The process is paused
    (SIGSTOP) while the test acts, so a fast or a loaded machine gives the same sequence."""
    run, max_steps = tmp_path / "run", 40
    args = ["train", "--plugin", "toy", "--out", str(run), "--max-steps", str(max_steps), "--no-progress", *THREADS,
            "--set", "data.num=2048", "--set", "training.batch_size=2048", "--set", "backbone.hidden=128",
            "--set", "training.preview_num=4"]
    proc = subprocess.Popen([sys.executable, "-m", "diffcore.platform.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(toy_site))
    try:
        _wait(proc, lambda: (run / runfiles.LOCK).is_file() and (run / runfiles.LOCK).read_text().strip(), "it locked the run")
        proc.send_signal(signal.SIGSTOP)
        second = invoke("train", "--plugin", "toy", "--out", str(run), *TINY)
        assert second.exit_code == 2, second.output
        assert f"another `diffcore train` (pid {proc.pid}) is training into it" in second.stderr
        proc.send_signal(signal.SIGCONT)
        _wait(proc, lambda: _rows(run) >= 2, "two logged steps")
        proc.send_signal(signal.SIGSTOP)
        assert _rows(run) < max_steps - 2
        proc.send_signal(signal.SIGTERM)  # delivered when it continues
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err and "trained" not in out
    step = _steps(run / "checkpoints" / "last.ckpt")
    assert 2 <= step < max_steps
    assert err.strip().splitlines()[-1] == (
        f"interrupted by SIGTERM at step {step}: checkpoint written to {run / 'checkpoints' / 'last.ckpt'}; "
        f"continue with: diffcore train --out {run} --resume"
    )
    assert (run / "ema.safetensors").is_file() and not (run / runfiles.LOCK).exists() and not _leftovers(run)
    assert _metric_steps(run) == list(range(step))

    res = invoke("train", "--out", str(run), "--resume", "--no-progress", "--set", "training.batch_size=64")
    assert res.exit_code == 0, res.output
    assert f"trained {max_steps} steps" in res.stdout
    assert _steps(run / "checkpoints" / "last.ckpt") == max_steps
    assert _metric_steps(run) == list(range(max_steps))  # nothing lost, nothing twice


def _signal_at_step(monkeypatch, at: int, times: int = 1):
    """Send this process SIGINT ``times`` times once training reaches step ``at``."""
    from diffcore.platform import training

    check = training.StopOnSignal._check

    def wrapped(self, trainer):
        if trainer.global_step == at:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        check(self, trainer)

    monkeypatch.setattr(training.StopOnSignal, "_check", wrapped)


def test_ctrl_c_stops_with_a_checkpoint_and_exit_code_130(toy_plugin, tmp_path, monkeypatch):
    run = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN when pytest runs in the background
    _signal_at_step(monkeypatch, 2)
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--max-steps", "6")
    assert res.exit_code == 130, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert res.stderr.strip().endswith(f"continue with: diffcore train --out {run} --resume")
    assert _steps(run / "checkpoints" / "last.ckpt") == 2
    assert not (run / "previews").exists()  # previews are skipped on the way out
    assert signal.getsignal(signal.SIGINT) is before  # handlers given back
    monkeypatch.undo()
    res = invoke("train", "--out", str(run), "--resume")
    assert res.exit_code == 0 and _steps(run / "checkpoints" / "last.ckpt") == 6


def test_a_second_ctrl_c_stops_at_once_without_a_traceback(toy_plugin, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _signal_at_step(monkeypatch, 2, times=2)
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--max-steps", "6", "--set", "training.checkpoint_every=1")
    assert res.exit_code == 130, res.output
    assert "before a new checkpoint was written; continue from the last one with" in res.stderr
    assert "Traceback" not in res.output and not (run / runfiles.LOCK).exists()
    monkeypatch.undo()
    res = invoke("train", "--out", str(run), "--resume")  # from the periodic checkpoint
    assert res.exit_code == 0, res.output


def test_a_failed_resume_leaves_the_run_untouched(toy_plugin, tmp_path):
    run = tmp_path / "run"
    assert invoke("train", "--plugin", "toy", "--out", str(run), *TINY).exit_code == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    res = invoke("train", "--out", str(run), "--resume", "--max-steps", "6", "--set", "backbone.hidden=48")
    assert res.exit_code == 2, res.output
    assert "does not fit the model the config now builds" in res.stderr
    assert "changed from the run's config.yaml: backbone.hidden 32 -> 48" in res.stderr
    assert "Nothing was written" in res.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # config.yaml, domain_state.json, ...
    # the run still resumes and samples
    assert invoke("train", "--out", str(run), "--resume", "--max-steps", "6").exit_code == 0
    assert invoke("sample", "--run", str(run), "--num", "2", "--steps", "3", "--out", str(tmp_path / "s")).exit_code == 0


def test_resume_falls_back_to_the_newest_readable_step_checkpoint(toy_plugin, tmp_path):
    run = tmp_path / "run"
    assert invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--set", "training.checkpoint_every=2").exit_code == 0
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step=2.ckpt", "step=4.ckpt"]
    (ckpts / "last.ckpt").unlink()
    (ckpts / "step=4.ckpt").write_bytes(b"truncated")
    res = invoke("train", "--out", str(run), "--resume", "--max-steps", "7")
    assert res.exit_code == 0, res.output
    assert "note: checkpoints/last.ckpt is missing; checkpoints/step=4.ckpt could not be read" in res.stderr
    assert "resuming from checkpoints/step=2.ckpt (step 2)" in res.stderr
    assert _steps(ckpts / "last.ckpt") == 7


def test_resume_of_a_run_without_any_checkpoint_says_how_to_start_over(toy_plugin, tmp_path):
    run = tmp_path / "run"
    assert invoke("train", "--plugin", "toy", "--out", str(run), *TINY).exit_code == 0
    for p in (run / "checkpoints").iterdir():
        p.unlink()
    res = invoke("train", "--out", str(run), "--resume", "--max-steps", "6")
    assert res.exit_code == 2
    assert "has a config but no checkpoint" in res.stderr
    assert f"`diffcore train --config {run / 'config.yaml'} --out NEW_RUN`" in res.stderr
    res = invoke("train", "--config", str(run / "config.yaml"), "--out", str(tmp_path / "again"), "--no-progress")
    assert res.exit_code == 0, res.output  # the advice works


def test_the_lock_of_a_dead_process_is_taken_over(toy_plugin, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / runfiles.LOCK).write_text(f"{dead.pid} {os.uname().nodename}\n")
    (run / ".config.yaml.tmp-123").write_text("half a file")  # what a killed writer leaves
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY)
    assert res.exit_code == 0, res.output
    assert f"pid {dead.pid}, which is no longer running; taken over" in res.stderr
    assert not _leftovers(run)  # the lock released, the stale temporary file swept


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "config.yaml"
    target.write_text("old\n")

    def fails(tmp: Path):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        runfiles.atomic_write(target, fails)
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
    runfiles.write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
