"""Training an autoencoder run (``diffcore train-autoencoder``; the run's files: :mod:`.autoencoder_run`).

A plain torch loop, not Lightning: the first stage is small, trains in minutes on one device,
and needs neither EMA, nor DDP, nor resuming; its loss is the autoencoder's own
(``loss(x) -> (loss, logs)``, LDM's reconstruction + KL). AdamW with a 50-step warm-up and
gradient clipping. At the end, on held-out data: reconstruction MSE, L1 and PSNR (peak to
peak 2, the [-1, 1] range domains normalise to) through the posterior's mean, the latents'
shape and std; and ``reconstructions/original`` beside ``reconstructions/decoded``, written by
the domain's own writer. Every file is written once training succeeded; a run directory that
already holds a run is refused before any work.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..contract import legacy
from ..contract.domain import Domain
from ..contract.errors import UserError
from ..nn.autoencoder import latent_of, reconstruct
from . import runfiles, runs
from .autoencoder_run import META, RECONSTRUCTIONS, WEIGHTS, AEResolved, to_yaml

WARMUP = 50


def check_out(out: Path) -> None:
    """Refuse a folder that already holds a run (a diffusion or an autoencoder run)."""
    if runs.holds_run(out) or (out / WEIGHTS).exists():
        raise UserError(f"--out {out} already holds a run; choose a new folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")


def _device(accelerator: str) -> torch.device:
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise UserError("training.accelerator: cuda was asked for but no CUDA GPU is available; use auto or cpu")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("training.accelerator: mps was asked for but no Apple MPS device is available; use auto or cpu")
    return torch.device(accelerator)


def _batches(loader: DataLoader):
    while True:
        yield from loader


def _check_round_trip(net, x: torch.Tensor, name: str) -> tuple[int, ...]:
    """The latent shape of ``x``'s examples; refuses an autoencoder that does not give x's shape back."""
    z, back = reconstruct(net, x[:2])  # as diffcore.testing.check_autoencoder does
    if tuple(back.shape) != tuple(x[:2].shape):
        raise UserError(f"autoencoder {name!r} maps data of shape {tuple(x.shape[1:])} to latents {tuple(z.shape[1:])} and back to "
                        f"{tuple(back.shape[1:])}: the data's sizes must be divisible by its downsampling factor; "
                        "change autoencoder.channel_mult (fewer levels) or the data: options (e.g. data.resolution)")
    return tuple(z.shape[1:])


def train(res: AEResolved, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Train the resolved autoencoder into ``out``; returns its metrics."""
    out = Path(out)
    check_out(out)
    tc = res.config.training
    torch.manual_seed(tc.seed)
    runs.use_threads(tc.threads)
    device = _device(tc.accelerator)
    domain = res.domain_cls(res.data_options, workdir=out / runs.CACHE)
    domain.setup()
    net = res.spec.build(res.options, domain).to(device)
    ds = domain.train_dataset()
    if len(ds) == 0:
        raise UserError(f"the {domain.name!r} domain's training set is empty; check the data: section of the config")
    loader = DataLoader(ds, batch_size=tc.batch_size, shuffle=True, collate_fn=domain.collate, drop_last=len(ds) >= tc.batch_size,
                        generator=torch.Generator().manual_seed(tc.seed))
    stream = _batches(loader)
    first = next(stream)
    if first.get("mask") is not None:
        raise UserError(f"the {domain.name!r} domain's batches carry a mask (examples of different sizes); an autoencoder needs data of one shape")
    latent_shape = _check_round_trip(net, first["x"].to(device), res.spec.name)
    opt = torch.optim.AdamW(net.parameters(), lr=tc.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / WARMUP))
    log: list[dict[str, float]] = []
    began, batch = time.perf_counter(), first
    for step in range(1, tc.max_steps + 1):
        net.train()
        loss, logs = net.loss(batch["x"].to(device))
        if not math.isfinite(float(loss.detach())):
            raise UserError(f"the autoencoder's loss became {float(loss)} at step {step}; lower training.lr (now {tc.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), tc.grad_clip)
        opt.step()
        sched.step()
        if step % tc.log_every == 0 or step == tc.max_steps:
            log.append({"step": step, "loss": float(loss.detach()), **logs})
            if progress:
                print(f"step {step}/{tc.max_steps}  loss {float(loss.detach()):.4f}  " + "  ".join(f"{k} {v:.4g}" for k, v in logs.items())
                      + f"  ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
        if step < tc.max_steps:
            batch = next(stream)
    net.eval()
    metrics = evaluate(net, domain, tc.eval_num, device)
    metrics.update(steps=tc.max_steps, seconds=round(time.perf_counter() - began, 1))
    _write(res, out, net, domain, metrics, log, latent_shape, first)
    return metrics


def held_out(domain: Domain, num: int) -> dict[str, Any]:
    """Up to ``num`` held-out examples as one batch (the training set's first where there are none)."""
    ds = domain.val_dataset()
    ds = ds if ds is not None and len(ds) > 0 else domain.train_dataset()
    return domain.collate([ds[i] for i in range(min(num, len(ds)))])


@torch.no_grad()
def evaluate(net, domain: Domain, num: int, device: torch.device) -> dict[str, Any]:
    """Reconstruction metrics through the posterior's mean on held-out examples."""
    x = held_out(domain, num)["x"].float()
    xs, zs = [], []
    for part in x.split(64):
        z = latent_of(net.encode(part.to(device)))
        zs.append(z.cpu())
        xs.append(net.decode(z).cpu())
    x_hat, z = torch.cat(xs), torch.cat(zs)
    mse = float((x - x_hat).pow(2).mean())
    return {"mse": mse, "l1": float((x - x_hat).abs().mean()), "psnr": 10 * math.log10(4.0 / max(mse, 1e-12)),
            "data_var": float(x.var()), "latent_std": float(z.std()), "num": len(x), "finite": bool(torch.isfinite(x_hat).all())}


def _write(res: AEResolved, out: Path, net, domain: Domain, metrics: dict, log: list, latent_shape, first) -> None:
    out.mkdir(parents=True, exist_ok=True)
    runs.save_weights(net, out / WEIGHTS)
    meta = {"autoencoder": res.spec.name, "domain": domain.name, "data_shape": list(first["x"].shape[1:]),
            "latent_shape": list(latent_shape)}
    runfiles.write_text_atomic(out / META, json.dumps(meta, indent=2) + "\n")
    runfiles.write_text_atomic(out / runs.DOMAIN_STATE, json.dumps(domain.state_dict(), indent=2) + "\n")
    runfiles.write_text_atomic(out / runs.METRICS_JSON, json.dumps(metrics, indent=2) + "\n")
    keys = sorted({k for row in log for k in row}, key=lambda k: (k != "step", k))
    rows = [",".join(keys)] + [",".join(str(row.get(k, "")) for k in keys) for row in log]
    runfiles.write_text_atomic(out / "metrics.csv", "\n".join(rows) + "\n")
    if res.config.training.picture_num > 0:
        write_reconstructions(net, domain, out / RECONSTRUCTIONS, res.config.training.picture_num)
    runfiles.write_text_atomic(out / runs.CONFIG, to_yaml(res.config))  # last: its presence means a finished run


@torch.no_grad()
def write_reconstructions(net, domain: Domain, out: Path, num: int) -> list[Path]:
    """Held-out examples (``original/``) and their reconstructions (``decoded/``), through the
    domain's own writer, with the examples' labels where the domain has them."""
    real = held_out(domain, num)
    x = real["x"].float()
    device = next(net.parameters()).device
    x_hat = net.decode(latent_of(net.encode(x.to(device)))).cpu()
    batch = dict(next(iter(domain.sample_batches(len(x), len(x)))))
    batch["shape"] = tuple(x.shape)
    cond, labels = real.get("cond"), domain.labels
    if isinstance(cond, torch.Tensor) and labels:
        batch["cond"], batch["labels"] = cond, [labels[int(i)] if 0 <= int(i) < len(labels) else str(int(i)) for i in cond]
    paths = legacy.write_samples(domain, [(x, batch)], out / "original", None)
    return paths + legacy.write_samples(domain, [(x_hat, batch)], out / "decoded", None)
