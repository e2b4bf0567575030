"""A DDP process that dies ends the run with one `error:` line, not gloo's traceback (issue 16,
item 6; diffcore.platform.ddp_failure): two CPU processes (gloo), one of which SIGKILLs itself
at its ninth training step; the survivor names the dead rank, the last checkpoint and the
command that resumes, which then works."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import make_site, run_cli

DYING = '''
"""The toy recipe whose backbone SIGKILLs its own process (rank DIE_RANK) at forward call DIE_AT."""
import os
import signal

from diffcore.hookspecs import BackboneSpec, Recipe, hookimpl
from toyplug.backbone import MLPOptions, build


def build_dying(options, domain):
    net = build(options, domain)
    rank = os.environ.get("LOCAL_RANK", "0")  # Lightning sets it in the processes it launches
    calls = []

    def hook(module, args):
        calls.append(1)
        if rank == os.environ.get("DIE_RANK") and len(calls) >= int(os.environ["DIE_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)

    net.register_forward_pre_hook(hook)
    return net


@hookimpl
def diffcore_register_backbones(register):
    register(BackboneSpec(name="toy-mlp-dying", domain="toy2d", build=build_dying, Options=MLPOptions))


@hookimpl
def diffcore_register_recipes(register):
    register(Recipe(name="toy-dying", domain="toy2d", backbone="toy-mlp-dying", defaults={
        "diffusion": {"schedule": "linear", "schedule_options": {"num_steps": 100}},
        "training": {"max_steps": 12, "batch_size": 8, "checkpoint_every": 2, "preview_num": 0, "log_every": 1,
                     "accelerator": "cpu", "devices": 2, "strategy": "ddp", "threads": 1},
    }))
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return make_site(tmp_path_factory.mktemp("site"), "toyplug", {"toy": "toyplug.plugin", "dying": "dying"},
                     modules={"dying": DYING})


@pytest.mark.slow
@pytest.mark.parametrize("dies, survivor_exit, why", [(1, 1, "killed by SIGKILL"),
                                                      (0, -9, "(Connection (reset|closed) by peer|Broken pipe)")])
def test_a_dead_process_ends_the_run_with_one_line(site, tmp_path, dies, survivor_exit, why):
    run = tmp_path / "run"
    proc = run_cli(["train", "--plugin", "toy-dying", "--out", str(run), "--no-progress"], site=site, cwd=tmp_path,
                   timeout=120, DIE_RANK=str(dies), DIE_AT="9")
    # rank 1 dies: rank 0 (the command) reports and exits 1; rank 0 dies (exit -9): rank 1 reports
    assert proc.returncode == survivor_exit, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    last = run / "checkpoints" / "last.ckpt"
    assert len(errors) == 1 and re.fullmatch(
        re.escape(f"error: a training process (rank {dies}) died: ") + why
        + re.escape(f"; the last checkpoint is {last}; resume with `diffcore train --resume --out {run}`"), errors[0]), proc.stderr
    assert "Traceback" not in proc.stderr and "[rank" not in proc.stderr, proc.stderr
    assert torch.load(last, weights_only=True)["global_step"] == 8  # the checkpoint of step 8; it died in step 9
    if dies == 1:  # the command the line gives resumes the run to its end
        proc = run_cli(["train", "--resume", "--out", str(run), "--no-progress"], site=site, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "trained 12 steps (2 process(es))" in proc.stdout
