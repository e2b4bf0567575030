"""Scaling out (docs/scaling.md): several processes and nodes give the same result as one.

- sampling: each sample's noise from (seed, index), so the files are bit for bit the same on
  one process or two, and the same samples at another batch size (to float rounding);
- evaluation: the same metrics on one process or two;
- training on two "nodes" (two processes with NODE_RANK 0/1 and MASTER_ADDR=127.0.0.1, one CPU
  process each) equals one node with two devices, weights to 1e-5;
- several nodes without the variables they need, or without node 0 answering: one line, exit 2.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cli_env, run_cli
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from diffcore.platform import records
from diffcore.platform.generation import per_sample_noise, rows, sample_seed

TRAIN = ["train", "--plugin", "toy", "--accelerator", "cpu", "--max-steps", "3", "--set", "training.batch_size=8",
         "--set", "training.preview_num=0", "--no-progress", "--threads", "1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def toy_run(toy_site, tmp_path_factory):
    run = tmp_path_factory.mktemp("scaling") / "run"
    proc = run_cli([*TRAIN, "--out", str(run)], site=toy_site, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run


def _values(path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 1))


# ------------------------------------------------------------------ per-sample noise
def test_each_sample_has_its_own_noise_whatever_the_batch():
    class Noise:
        def noise(self, like, batch, generator=None):
            return torch.randn(like.shape, generator=generator) * batch["mask"]

    batch = {"shape": (5, 3), "mask": torch.tensor([[1.0], [1.0], [0.0], [1.0], [1.0]]), "cond": {"a": torch.arange(5)}, "names": list("abcde")}
    whole = per_sample_noise(Noise(), batch, 7, 10, "cpu")
    first, second = whole(torch.empty(5, 3)), whole(torch.empty(5, 3))
    a = per_sample_noise(Noise(), rows(batch, 0, 2), 7, 10, "cpu")
    b = per_sample_noise(Noise(), rows(batch, 2, 5), 7, 12, "cpu")
    assert torch.equal(torch.cat([a(torch.empty(2, 3)), b(torch.empty(3, 3))]), first)  # the same draws, split or not
    assert torch.equal(torch.cat([a(torch.empty(2, 3)), b(torch.empty(3, 3))]), second)  # and the streams go on alike
    assert not torch.equal(first, second) and (first[2] == 0).all()  # fresh draws each call; the batch's mask applied
    assert rows(batch, 1, 3)["cond"]["a"].tolist() == [1, 2] and rows(batch, 1, 3)["names"] == list("abcde")
    seeds = {sample_seed(s, i, k) for s in range(3) for i in range(50) for k in (0, 1)}
    assert len(seeds) == 300 and all(0 <= x < 2**63 for x in seeds)


# ------------------------------------------------------------------ sampling, evaluation
def test_samples_are_the_same_on_one_and_two_processes_and_at_another_batch_size(toy_site, toy_run, tmp_path):
    common = ["sample", "--run", str(toy_run), "--num", "37", "--steps", "12", "--sampler", "ddpm", "--threads", "1"]
    one = run_cli([*common, "--batch-size", "8", "--out", str(tmp_path / "one")], site=toy_site, timeout=300)
    two = run_cli([*common, "--batch-size", "8", "--out", str(tmp_path / "two"), "--devices", "2", "--accelerator", "cpu"],
                  site=toy_site, timeout=300)
    other = run_cli([*common, "--batch-size", "5", "--out", str(tmp_path / "other")], site=toy_site, timeout=300)
    for proc in (one, two, other):
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(2 processes)" in two.stdout and two.stdout.count("wrote") == 1  # rank 0 alone writes and speaks
    # ddpm draws fresh noise at every step: the per-sample streams carry it over any split
    assert (tmp_path / "one" / "samples.csv").read_bytes() == (tmp_path / "two" / "samples.csv").read_bytes()
    a, c = _values(tmp_path / "one" / "samples.csv"), _values(tmp_path / "other" / "samples.csv")
    assert a.shape == (37, 2) and np.allclose(a, c, rtol=1e-5, atol=1e-4 * np.abs(a).max())


def test_evaluation_on_two_processes_equals_one(toy_site, toy_run):
    common = ["evaluate", "--run", str(toy_run), "--num", "40", "--batch-size", "16", "--steps", "8", "--threads", "1"]
    one = run_cli(common, site=toy_site, timeout=300)
    two = run_cli([*common, "--devices", "2", "--accelerator", "cpu", "--seed", "0"], site=toy_site, timeout=300)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    m1, m2 = json.loads(one.stdout), json.loads(two.stdout)  # printed once, by rank 0
    assert m1["mean_dist"] == pytest.approx(m2["mean_dist"], rel=1e-5) and m1["class_accuracy"] == m2["class_accuracy"]
    assert len(records.load(toy_run / "metrics.json")) == 1  # the same key: one record, written by rank 0


# ------------------------------------------------------------------ several nodes
@pytest.mark.slow
def test_two_nodes_train_as_one_node_with_two_devices(toy_site, tmp_path):
    one = run_cli([*TRAIN, "--strategy", "ddp", "--devices", "2", "--out", str(tmp_path / "one")], site=toy_site, timeout=300)
    assert one.returncode == 0, one.stdout + one.stderr
    port = str(_free_port())
    node = [sys.executable, "-m", "diffcore.platform.cli", *TRAIN, "--strategy", "ddp", "--devices", "1", "--num-nodes", "2"]
    procs = [subprocess.Popen([*node, "--out", str(tmp_path / f"node{r}")], cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=cli_env(toy_site, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(r)))
             for r in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert "trained 3 steps (2 process(es))" in outs[0][0] and "trained" not in outs[1][0]  # node 0 reports
    assert not (tmp_path / "node1" / "config.yaml").exists()  # only global rank 0 writes the run
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_file(tmp_path / "one" / name), load_file(tmp_path / "node0" / name)
        assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5


@pytest.mark.parametrize("env, message", [
    ({"MASTER_PORT": "1", "NODE_RANK": "1"}, "MASTER_ADDR not set"),
    ({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "http", "NODE_RANK": "1"}, "is not a port number"),
    ({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "PORT", "NODE_RANK": "1", "DIFFCORE_MASTER_WAIT": "1"}, "node 0 does not answer at 127.0.0.1:"),
    ({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "PORT", "NODE_RANK": "2"}, "NODE_RANK=2 is not one of 0..1"),
])
def test_several_nodes_without_what_they_need_is_one_line(toy_site, tmp_path, env, message):
    env = {k: (str(_free_port()) if v == "PORT" else v) for k, v in env.items()}
    proc = run_cli([*TRAIN, "--num-nodes", "2", "--out", str(tmp_path / "run")], site=toy_site, cwd=tmp_path, timeout=120, **env)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_sampling_on_several_nodes_checks_them_too(toy_site, toy_run, tmp_path):
    proc = run_cli(["sample", "--run", str(toy_run), "--num-nodes", "2", "--out", str(tmp_path / "s")], site=toy_site, timeout=120,
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), NODE_RANK="1", DIFFCORE_MASTER_WAIT="1")
    assert proc.returncode == 2 and "node 0 does not answer" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------ FSDP
class ShardProbe(Callback):
    """Records, on each rank after the first step, whether the backbone and the EMA are sharded."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != 1:
            return
        from torch.distributed.tensor import DTensor

        params = list(pl_module.backbone.parameters())
        Path(f"{self.path}.{trainer.global_rank}").write_text(json.dumps({
            "sharded": all(isinstance(p, DTensor) for p in [*params, *pl_module.ema.parameters()]),
            "local": sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in params),
            "full": sum(p.numel() for p in params)}))


@pytest.mark.slow
def test_fsdp_on_cpu_shards_the_backbone_and_trains_as_ddp(toy_site, tmp_path):
    probe = tmp_path / "probe"
    path = os.pathsep.join([str(toy_site), str(Path(__file__).parent), str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    args = [*TRAIN, "--devices", "2", "--set", "training.preview_num=4", "--set", "training.preview_every=2"]
    fsdp = run_cli([*args, "--strategy", "fsdp", "--out", str(tmp_path / "fsdp"), "--set",
                    f"training.callbacks=[{{class: test_scaling.ShardProbe, args: {{path: '{probe}'}}}}]"],
                   cwd=tmp_path, timeout=300, PYTHONPATH=path)
    ddp = run_cli([*args, "--strategy", "ddp", "--out", str(tmp_path / "ddp")], site=toy_site, cwd=tmp_path, timeout=300)
    assert fsdp.returncode == 0 and ddp.returncode == 0, fsdp.stderr + ddp.stderr
    seen = [json.loads(Path(f"{probe}.{r}").read_text()) for r in (0, 1)]
    assert all(s["sharded"] for s in seen) and seen[0]["full"] == seen[1]["full"]
    assert seen[0]["local"] + seen[1]["local"] == seen[0]["full"] and max(s["local"] for s in seen) < seen[0]["full"]
    for name in ("model.safetensors", "ema.safetensors"):  # the same global batches: the same weights as DDP
        a, b = load_file(tmp_path / "ddp" / name), load_file(tmp_path / "fsdp" / name)
        assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5
    ckpt = torch.load(tmp_path / "fsdp" / "checkpoints" / "last.ckpt", weights_only=True)  # full tensors, not shards
    assert all(ckpt["state_dict"][f"backbone.{k}"].shape == v.shape for k, v in a.items())
    assert (tmp_path / "fsdp" / "previews" / "step-0000002").is_dir()  # previews from the gathered EMA
    for weights in ([], ["--checkpoint", str(tmp_path / "fsdp" / "checkpoints" / "last.ckpt")]):
        out = tmp_path / f"samples{len(weights)}"
        proc = run_cli(["sample", "--run", str(tmp_path / "fsdp"), "--num", "8", "--out", str(out), *weights], site=toy_site, timeout=300)
        assert proc.returncode == 0 and (out / "samples.csv").is_file(), proc.stderr


def test_a_launcher_that_started_more_processes_than_asked_for_is_refused(toy_site, toy_run, tmp_path):
    # what torchrun sets for the second of two processes: each would otherwise sample everything
    env = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "x",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    proc = run_cli(["sample", "-r", str(toy_run), "-n", "4", "--out", str(tmp_path / "s")], site=toy_site, timeout=120, **env)
    assert proc.returncode == 2 and "one of 2 processes torchrun/srun started" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
@pytest.mark.parametrize("accelerator, message", [("gpu", "no GPU is visible"), ("tpu9", "expected cpu, gpu or auto")])
def test_an_accelerator_this_machine_lacks_is_refused(toy_site, toy_run, tmp_path, accelerator, message):
    proc = run_cli(["sample", "--run", str(toy_run), "--accelerator", accelerator, "--out", str(tmp_path / "s")], site=toy_site, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_sampling_leaves_the_callers_random_stream_alone(toy_plugin, toy_run):
    import diffcore

    pipe = diffcore.load(toy_run, threads=1)
    torch.manual_seed(123)
    torch.rand(3)
    expected = torch.rand(3)
    torch.manual_seed(123)
    torch.rand(3)
    x = pipe.sample(3, steps=2)
    assert torch.equal(torch.rand(3), expected) and x.shape == (3, 2)
    assert torch.equal(pipe.sample(3, steps=2), x)  # and the samples still follow their seed
