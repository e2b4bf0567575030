"""Progress lines for redirected logs (diffcore.platform.progress) and evaluation records
in RUN/metrics.json (diffcore.platform.records, `diffcore evaluate --list`)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from conftest import TINY, run_cli
import diffcore
from diffcore import schedules
from diffcore.platform import records
from diffcore.platform.cli import app
from diffcore.platform.progress import LineProgress, format_duration, progress_line

LINE = re.compile(r"^step (\d+)/(\d+)  loss \S+  \S+ it/s  ETA (\d+h\d\dm|\d+m\d\ds|\d+s)$")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


# ------------------------------------------------------------------ progress
def test_train_prints_progress_lines_when_stdout_is_a_pipe(toy_site, tmp_path):
    run = tmp_path / "run"
    args = [a for a in TINY if a != "--no-progress"]
    proc = run_cli(["train", "--plugin", "toy", "--out", str(run), *args, "--max-steps", "20", "--threads", "1"],
                   site=toy_site, OMP_NUM_THREADS="1")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout
    lines = [m for m in map(LINE.match, proc.stdout.splitlines()) if m]
    steps = [int(m[1]) for m in lines]
    assert steps[0] == 1 and steps[-1] == 20, proc.stdout  # the first and the last step always
    assert steps == sorted(set(steps)) and len(steps) >= 5, proc.stdout  # every 10% (2 steps) of 20
    assert all(m[2] == "20" for m in lines)


def test_no_progress_stays_silent(toy_plugin, tmp_path):
    res = invoke("train", "--plugin", "toy", "--out", str(tmp_path / "run"), *TINY, "--threads", "1")
    assert res.exit_code == 0, res.output
    assert not re.search(r"^step \d+/", res.output, re.M), res.output


def _trainer(step, max_steps=600, loss=0.0412):
    return SimpleNamespace(global_step=step, max_steps=max_steps, is_global_zero=True, callback_metrics={"loss": loss})


def test_a_line_every_tenth_or_every_30_seconds_whichever_first():
    import io

    clock = SimpleNamespace(t=0.0)
    out = io.StringIO()
    bar = LineProgress(stream=out, clock=lambda: clock.t)
    bar.on_train_start(_trainer(0), None)
    printed = []
    for step in range(1, 601):
        clock.t += 1.0 if step <= 300 else 0.01  # slow at first (30 s before 10% = 60 steps), then fast
        before = out.getvalue().count("\n")
        bar.on_train_batch_end(_trainer(step), None, None, None, step - 1)
        if out.getvalue().count("\n") > before:
            printed.append(step)
    assert printed[0] == 1 and printed[-1] == 600
    assert 60 in printed and 120 in printed and 600 in printed  # every 10% of max_steps
    assert 31 in printed and 90 in printed  # 30 s after the line before (before the next 10% line)
    assert 310 not in printed and 360 in printed  # fast: only every 60 steps
    line = out.getvalue().splitlines()[-1]
    assert line.startswith("step 600/600  loss 0.0412  ") and line.endswith("ETA 0s")


def test_progress_line_format():
    assert progress_line(120, 600, 0.0412, 2.31) == "step 120/600  loss 0.0412  2.31 it/s  ETA 3m28s"
    assert progress_line(1, 600, None, None) == "step 1/600  ETA ?"
    assert format_duration(45) == "45s" and format_duration(3725) == "1h02m" and format_duration(float("nan")) == "?"


# ------------------------------------------------------------------ evaluation records
def test_evaluations_coexist_replace_list_and_upgrade_an_old_flat_file(toy_plugin, tmp_path):
    run = tmp_path / "run"
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--threads", "1")
    assert res.exit_code == 0, res.output
    path = run / "metrics.json"
    # an old flat file, as `diffcore evaluate` wrote it before records
    old = {"class_accuracy": 0.25, "finite": 1.0,
           "evaluated_with": {"sampler": "ddpm", "steps": 50, "options": {}, "guidance": 1.0, "num": 4, "seed": 0, "weights": "w"}}
    path.write_text(json.dumps(old))
    res = invoke("evaluate", "--run", str(run), "--list")
    assert res.exit_code == 0, res.output
    assert len(res.output.splitlines()) == 2 and "ddpm" in res.output.splitlines()[1]

    common = ["--run", str(run), "--num", "8", "--steps", "3", "--threads", "1"]
    for sampler in ("euler", "ddim"):
        res = invoke("evaluate", *common, "--sampler", sampler)
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["evaluated_with"]["sampler"] == sampler
    doc = json.loads(path.read_text())
    recs = doc["records"]
    assert [r["evaluated_with"]["sampler"] for r in recs] == ["ddpm", "euler", "ddim"]
    assert recs[0]["metrics"] == {"class_accuracy": 0.25, "finite": 1.0}  # the old file, upgraded to a record
    assert all(r["timestamp"] for r in recs)
    assert doc["evaluated_with"]["sampler"] == "ddim" and doc["finite"] == 1.0  # older readers: the latest, flat
    assert recs[1]["evaluated_with"]["spacing"] and recs[1]["evaluated_with"]["num"] == 8

    # the same key replaces its record, in place; another seed is another record
    recs[1]["metrics"]["marker"] = 1.0
    path.write_text(json.dumps(doc))
    assert invoke("evaluate", *common, "--sampler", "euler").exit_code == 0
    assert invoke("evaluate", *common, "--sampler", "euler", "--seed", "1").exit_code == 0
    recs = json.loads(path.read_text())["records"]
    assert [(r["evaluated_with"]["sampler"], r["evaluated_with"]["seed"]) for r in recs] == [
        ("ddpm", 0), ("euler", 0), ("ddim", 0), ("euler", 1)]
    assert "marker" not in recs[1]["metrics"]

    res = invoke("evaluate", "--run", str(run), "--list")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert len(lines) == 5 and lines[0].split()[:3] == ["when", "sampler", "steps"]
    assert [ln.split()[1] for ln in lines[1:]] == ["ddpm", "euler", "ddim", "euler"]
    assert "class_accuracy=" in lines[2]

    # a grid given as times (auto's tuned grid) is recorded, and is part of the key: two grids of
    # the same length are two records; records of named spacings keep their keys
    assert "times" not in recs[0]["evaluated_with"] and "times" not in recs[1]["evaluated_with"]
    for extra in (["--times", "0.99,0.5,0.1"], ["--times", "0.9,0.4,0.05"], ["--times", "0.99,0.5,0.1"], ["--steps", "3", "--spacing", "logsnr"]):
        res = invoke("evaluate", "--run", str(run), "--num", "8", "--threads", "1", "--sampler", "ddim", *extra)
        assert res.exit_code == 0, res.output
    new = json.loads(path.read_text())["records"][4:]
    assert [(r["evaluated_with"]["spacing"], r["evaluated_with"].get("times")) for r in new] == [
        ("custom", [0.99, 0.5, 0.1]), ("custom", [0.9, 0.4, 0.05]), ("logsnr", None)]
    ew = {"sampler": "ipndm", "steps": 3, "spacing": "custom", "options": {}, "guidance": 1.0, "num": 8, "seed": 0, "weights": "w"}
    keys = {records.record_key({"evaluated_with": {**ew, "times": t}}) for t in ([0.99, 0.5, 0.1], [0.9, 0.4, 0.05], [0.99, 0.5, 0.1])}
    assert len(keys) == 2 and records.record_key({"evaluated_with": ew}) not in keys
    res = invoke("evaluate", "--run", str(run), "--num", "8", "--threads", "1", "--sampler", "auto", "--steps", "5")
    assert res.exit_code == 0, res.output
    assert "sampler 'auto'" in res.output  # the note: what auto chose
    ew = json.loads(path.read_text())["evaluated_with"]
    plan = diffcore.sampling.SamplingPlan.make(schedules.get("linear", num_steps=100), "auto", 5)
    assert (ew["sampler"], ew["spacing"]) == (plan.sampler, plan.spacing)
    assert ew.get("times") == ([float(t) for t in plan.ts[:-1]] if plan.spacing == "tuned" else None)


def test_evaluation_files_survive_a_failed_rerun_and_an_older_layout(tmp_path, monkeypatch):
    """RUN/eval/records/ID keeps each evaluation's files: a rerun that fails leaves the earlier
    ones (and no half-written folder); files of the flat layout of older versions, found in
    RUN/eval, are moved under records/ rather than deleted."""
    from diffcore.contract import legacy
    from diffcore.platform import generation

    latest = tmp_path / "eval"
    latest.mkdir()
    (latest / "grid.png").write_text("old layout")  # written before evaluations had their own folders
    own = latest / "records" / "abc"
    own.mkdir(parents=True)
    (own / "evaluated_with.json").write_text("{}")
    (own / "metrics.csv").write_text("new")
    generation._copy_latest(own, latest)
    assert sorted(p.name for p in latest.iterdir()) == ["evaluated_with.json", "metrics.csv", "records"]
    (before,) = [d for d in (latest / "records").iterdir() if d.name.startswith("before-")]
    assert (before / "grid.png").read_text() == "old layout"

    class Boom(RuntimeError):
        pass

    def failing(domain, fn, num, out_dir, bs):
        (out_dir / "half.csv").write_text("half")
        raise Boom("interrupted")

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = SimpleNamespace(dir=run_dir, weights=run_dir / "w", domain=SimpleNamespace(sampling_settings=dict), config=SimpleNamespace(sampling=SimpleNamespace(batch_size=4)))
    monkeypatch.setattr(legacy, "evaluate", failing)
    from diffcore.platform import budget

    monkeypatch.setattr(budget, "check_evaluation", lambda *a: None)
    monkeypatch.setattr(generation.runs, "resolve_plan", lambda r, p, o: diffcore.sampling.SamplingPlan.make("linear", "ddim", 3))
    monkeypatch.setattr(generation, "_evaluation_fn", lambda *a: None)
    kept = run_dir / "eval" / "records" / "kept"
    kept.mkdir(parents=True)
    (kept / "rows.csv").write_text("earlier")
    with pytest.raises(Boom):
        generation.evaluate(run, num=4, progress=False)
    assert [d.name for d in (run_dir / "eval" / "records").iterdir()] == ["kept"] and (kept / "rows.csv").read_text() == "earlier"


def test_list_without_evaluations_and_with_a_bad_file(tmp_path):
    res = invoke("evaluate", "--run", str(tmp_path), "--list")
    assert res.exit_code == 0 and "no evaluations recorded" in res.output
    (tmp_path / "metrics.json").write_text("[1, 2]")
    res = invoke("evaluate", "--run", str(tmp_path), "--list")
    assert res.exit_code == 2 and "metrics.json" in res.output and "Traceback" not in res.output
