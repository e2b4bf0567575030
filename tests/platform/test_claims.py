"""examples/claims.py: the verdicts it writes into docs/claims.md follow the measured rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def claims(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("claims_script", ROOT / "examples" / "claims.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "DOCS", tmp_path)
    return mod


def _row(label, steps, fr, cc=0.95):
    flow = label == "flow"
    return {"label": label, "steps": steps, "frechet_ratio": fr, "class_consistency": cc,
            "schedule": "flow" if flow else "cosine", "prediction": "velocity" if flow else label.split("-")[0], "train_steps": 800}


def test_prediction_verdict(claims, tmp_path):
    rows = [_row("eps", 20, 1.5), _row("eps", 50, 1.4), _row("x0", 20, 2.5), _row("x0", 50, 2.2)]
    assert claims._compare_verdict("prediction", rows).startswith("**held**")
    assert claims._compare_verdict("prediction", rows[2:] + rows[:2]).startswith("**held**")  # --run order does not matter
    rows[3]["frechet_ratio"] = 1.3  # x0 better at 50 steps
    assert claims._compare_verdict("prediction", rows).startswith("**did not hold**")
    rows[3]["frechet_ratio"] = 2.2
    rows[0]["class_consistency"] = 0.80  # eps's classes worse by more than 0.03
    assert claims._compare_verdict("prediction", rows).startswith("**did not hold**")


def test_flow_verdict_and_render(claims, tmp_path):
    rows = [_row("eps-ddpm", 20, 3.0), _row("eps-ddpm", 50, 2.0), _row("flow", 20, 1.6), _row("flow", 50, 1.4)]
    assert claims._compare_verdict("flow", rows).startswith("**held**")
    assert claims._compare_verdict("flow", rows[2:] + rows[:2]) == claims._compare_verdict("flow", rows)
    claims.render({"flow": {"rows": rows, "sampler": "ddim"}})
    text = (tmp_path / "claims.md").read_text()
    assert "## (c) Flow matching samples well in 20-50 steps" in text and "**held**" in text
    rows[2]["frechet_ratio"] = 1.9  # 20 steps no longer within 1.25x of 50
    assert claims._compare_verdict("flow", rows).startswith("**did not hold**")
