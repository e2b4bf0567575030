"""benchmarks/frontier.py writes diffcore/math/sampling/recommended.py, the data ``sampler="auto"``
reads: a tuned grid found by its search is valid, and ``tune`` writes rows (tuned ones with
their grid) that the library reads back, keeping the rows of budgets the matrix leaves out."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from diffcore import sampling, schedules
from diffcore.testing import suite

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frontier():
    spec = importlib.util.spec_from_file_location("frontier", ROOT / "benchmarks" / "frontier.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_grid_search_returns_a_grid_no_worse_than_its_start(frontier, monkeypatch):
    """A short search (few evaluations, a small sample) on the flow path: plain floats that
    rise from 0 to at most 1, read by grid.tuned_times; its endpoint error against the exact
    ODE is no larger than that of every named spacing it may start from."""
    torch.set_num_threads(1)
    monkeypatch.setattr(frontier, "TUNE_N", 64)
    s = schedules.get("flow")
    f = frontier.optimise_grid(s, "ipndm", {"order": 3}, 4, evals=25)
    assert all(type(v) is float for v in f) and f[0] == 0.0 and all(b > a for a, b in zip(f, f[1:])) and f[-1] <= 1
    ts = sampling.tuned_times(s, 4, f)

    def err(times):  # the search's objective, recomputed here
        out = []
        for i, name in enumerate(suite.TUNING):
            t = suite.get(name)
            z = torch.randn(64, t.dim, generator=torch.Generator().manual_seed(frontier.TUNE_SEED + i), dtype=torch.float64)
            exact = sampling.SamplingPlan.make(s, "dpm-solver++3m", 400, "logsnr").run(t.predictor(s), z)
            x = sampling.SamplingPlan.make(s, "ipndm", options={"order": 3}, times=times).run(t.predictor(s), z)
            out.append(math.log(float(((x - exact) ** 2).sum(1).mean()) / float(exact.var(0).sum()) + 1e-8))
        return sum(out) / len(out)

    named = min(err(sampling.timesteps(s, 4, sp)) for sp in ("linspace", "logsnr", "karras", "trailing", "shifted"))
    assert err(ts) <= named + 1e-6


def test_tune_writes_tuned_rows_the_library_reads(frontier, tmp_path, monkeypatch):
    out = tmp_path / "recommended.py"
    out.write_text(frontier.RECOMMENDED.read_text())
    monkeypatch.setattr(frontier, "RECOMMENDED", out)
    grid = [0.0, 0.3, 0.45, 0.6]
    zs = {"ipndm|tuned|order=3": [1.0] * 12, "unipc-bh1|trailing|": [5.0] * 12, "ddim|linspace|": [40.0] * 12}
    matrix = tmp_path / "m.json"
    matrix.write_text(json.dumps({"seeds": [0, 1], "targets": suite.TUNING, "z": {"flow": {"4": zs}},
                                  "grids": {"flow": {"4": {"ipndm|tuned|order=3": grid}}}}))
    before = frontier._current()
    frontier.tune(Namespace(matrix=[str(matrix)], criterion="log"))
    tree = ast.parse(out.read_text())
    rows = ast.literal_eval(next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "RECOMMENDED").value)
    assert rows["flow"][0] == (4, "ipndm", "tuned", {"order": 3}, 1.0, grid)
    assert rows["flow"][1:] == before["flow"][1:] and rows["linear"] == before["linear"]  # budgets the matrix left out: kept
    assert "CRITERION = 'log'" in out.read_text()
