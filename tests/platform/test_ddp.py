"""`diffcore train --accelerator cpu --devices 2 --strategy ddp`: Lightning's DDP on two CPU
processes (the same command scales to GPUs and nodes)."""

from __future__ import annotations

import csv

import pytest
import torch
from conftest import run_cli


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(toy_site, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--plugin", "toy", "--out", str(run), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
            "--max-steps", "3", "--set", "training.batch_size=8", "--set", "training.preview_num=2", "--no-progress"]
    proc = run_cli(args, site=toy_site, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # printed once, by rank 0, after training in two processes
    assert proc.stdout.count("trained 3 steps (2 process(es))") == 1
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3
    assert (run / "ema.safetensors").is_file() and (run / "config.yaml").is_file()
    with open(run / "metrics.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f) if r["loss"]] == [0, 1, 2]
    assert "devices: 2" in (run / "config.yaml").read_text()
