"""Progress of long sampling, evaluation and editing (diffcore.platform.progress_lines; issue 16,
item 3): when stderr is not a terminal, a line every 10% of the batches or every 30 s
(DIFFCORE_PROGRESS_SECONDS) once the loop has run that long; on a terminal one line redrawn in
place; short commands stay quiet. Training's progress lines follow the same rule."""

from __future__ import annotations

import io
import json
import re
from types import SimpleNamespace

import pytest
import toyplug.plugin
import torch
from conftest import TINY, run_cli
from typer.testing import CliRunner

from diffcore.cli import app
from diffcore.platform import editing
from diffcore.platform.progress import LineProgress
from diffcore.platform.progress_lines import EVERY_ENV, BatchProgress
from diffcore.registry import registered_plugin

LINE = re.compile(r"^(\w+): batch (\d+)/(\d+)  samples (\d+)/(\d+)  \S+ it/s  ETA (\d+h\d\dm|\d+m\d\ds|\d+s)$")


def lines(text: str, what: str) -> list[tuple[int, ...]]:
    found = [m for m in map(LINE.match, text.splitlines()) if m and m[1] == what]
    return [tuple(int(g) for g in m.groups()[1:5]) for m in found]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with registered_plugin(toyplug.plugin, "toy"):
        out = tmp_path_factory.mktemp("progress") / "run"
        res = CliRunner().invoke(app, ["train", "--plugin", "toy", "--out", str(out), *TINY, "--threads", "1"])
        assert res.exit_code == 0, res.output
        yield out


def test_sample_prints_progress_lines_to_a_redirected_stderr(run, toy_site, tmp_path):
    out = tmp_path / "samples"
    args = ["sample", "--run", str(run), "--num", "40", "--batch-size", "8", "--steps", "2", "--out", str(out), "--threads", "1"]
    proc = run_cli(args, site=toy_site, **{EVERY_ENV: "0"})
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stderr, "sampling") == [(b, 5, 8 * b, 40) for b in range(1, 6)], proc.stderr
    assert "sampling:" not in proc.stdout and "\r" not in proc.stderr
    # by default a loop shorter than 30 s prints nothing
    proc = run_cli([*args[:-4], "--out", str(tmp_path / "quiet"), "--threads", "1"], site=toy_site)
    assert proc.returncode == 0, proc.stderr
    assert "sampling:" not in proc.stderr, proc.stderr


def test_evaluate_prints_progress_lines_and_stdout_stays_json(run, monkeypatch):
    monkeypatch.setenv(EVERY_ENV, "0")
    with registered_plugin(toyplug.plugin, "toy"):
        res = CliRunner().invoke(app, ["evaluate", "--run", str(run), "--num", "40", "--batch-size", "16", "--steps", "2",
                                       "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert lines(res.stderr, "evaluating") == [(1, 3, 16, 40), (2, 3, 32, 40), (3, 3, 40, 40)], res.stderr
    assert json.loads(res.stdout)["evaluated_with"]["num"] == 40


def test_edit_loop_reports_its_batches(monkeypatch, capsys):
    from diffcore.math.sampling import SamplingPlan

    monkeypatch.setenv(EVERY_ENV, "0")
    def noise(like, batch, generator=None):
        return torch.randn(like.shape, generator=generator)

    run = SimpleNamespace(device=torch.device("cpu"), domain=SimpleNamespace(name="plane", noise=noise),
                          net=lambda x, t, cond=None: torch.zeros_like(x))
    batches = [{"shape": (3, 2), "known": torch.zeros(3, 2), "keep": torch.tensor([1.0, 0.0])} for _ in range(4)]
    out = editing.edit_run(run, SamplingPlan.make("linear", "ddim", 4), batches)
    assert len(out) == 4
    assert lines(capsys.readouterr().err, "editing") == [(b, 4, 3 * b, 12) for b in range(1, 5)]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_quiet_for_the_first_30_seconds_then_every_tenth(monkeypatch):
    monkeypatch.delenv(EVERY_ENV, raising=False)
    clock, err = Clock(), io.StringIO()
    report = BatchProgress("sampling", [{"shape": (10,)}] * 100, stream=err, clock=clock)
    shown = []
    for b in range(1, 101):
        clock.t += 1.0  # one batch a second
        before = err.getvalue().count("\n")
        report.done({"shape": (10,)})
        if err.getvalue().count("\n") > before:
            shown.append(b)
    assert shown == [30, 40, 50, 60, 70, 80, 90, 100]  # nothing before 30 s; then every 10% of 100 batches
    last = err.getvalue().splitlines()[-1]
    assert last == "sampling: batch 100/100  samples 1000/1000  1 it/s  ETA 0s"
    assert err.getvalue().splitlines()[0] == "sampling: batch 30/100  samples 300/1000  1 it/s  ETA 1m10s"


def test_on_a_terminal_one_line_is_redrawn(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    clock, err = Clock(), Tty()
    report = BatchProgress("evaluating", 4, 40, stream=err, clock=clock)
    for _ in range(4):
        clock.t += 2.0
        report.done(10)
    text = err.getvalue()
    assert text.count("\r") == 4 and text.endswith("samples 40/40  0.5 it/s  ETA 0s\n") and text.count("\n") == 1


def test_training_lines_follow_the_same_setting(monkeypatch):
    monkeypatch.setenv(EVERY_ENV, "5")
    assert LineProgress().cadence.every_seconds == 5.0
    monkeypatch.setenv(EVERY_ENV, "soon")  # not a number: the default
    assert LineProgress().cadence.every_seconds == 30.0
