"""Previews say what they cost (one line at the end of training, preview_s in metrics.csv) and
can be made cheaper: training.preview_steps samples them with fewer steps, preview_num=0 skips
them."""

from __future__ import annotations

import csv

from conftest import TINY
from typer.testing import CliRunner

from diffcore.cli import app
from diffcore.platform.training_logs import PreviewCost


def invoke(*args: str):
    return CliRunner().invoke(app, [*args, "--threads", "1"])


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_cost_of_previews_is_printed_and_recorded(toy_plugin, tmp_path):
    run = tmp_path / "run"
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--set", "training.preview_every=2",
                 "--set", "training.preview_steps=2")
    assert res.exit_code == 0, res.output
    (line,) = [ln for ln in res.stdout.splitlines() if ln.startswith("previews:")]
    # previews after step 2 and at the end (4), 4 samples each, at 2 sampling steps instead of the toy's 10
    assert line.startswith("previews: 2 x 4 samples (2 sampling steps), ") and "% of the run); training.preview_num" in line
    assert [int(r["step"]) for r in _rows(run / "metrics.csv") if r["preview_s"]] == [2, 4]
    assert all(float(r["preview_s"]) > 0 for r in _rows(run / "metrics.csv") if r["preview_s"])
    assert "preview_steps: 2" in (run / "config.yaml").read_text()

    run = tmp_path / "none"
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--set", "training.preview_num=0")
    assert res.exit_code == 0, res.output
    assert "previews:" not in res.stdout and not (run / "previews").exists()


def test_too_few_preview_steps_for_the_sampler_are_refused_before_any_work(toy_plugin, tmp_path):
    run = tmp_path / "run"
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--set", "sampling.sampler=pc", "--set", "training.preview_steps=3")
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: training.preview_steps=3: sampler 'pc' needs at least 8 steps"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not run.exists()


def test_the_cost_line():
    cost = PreviewCost(count=3, samples=48, seconds=4.1)
    assert cost.line(60.3, 50).startswith("previews: 3 x 16 samples (50 sampling steps), 4.1 s (6.8% of the run)")
