"""``diffcore train-autoencoder``: train a plugin's autoencoder for latent diffusion (docs/latent.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from diffcore.platform.cliopts import out_path


def train_autoencoder(
    plugin: Optional[str] = typer.Option(None, "--plugin", "-p", help="Recipe whose domain (and data: defaults) the autoencoder is for (`diffcore plugins` lists them); may also come from `plugin:` in --config."),
    autoencoder: Optional[str] = typer.Option(None, "--autoencoder", "-a", help="The autoencoder to train [default: the one registered for the recipe's domain]."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file: plugin, name, data:, autoencoder: (its options), training: (max_steps, batch_size, lr, seed, ...)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override one key: --set autoencoder.latent_channels=8, --set data.resolution=32 (value parsed as YAML). Repeatable."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", parser=out_path, metavar="PATH", help="Run directory to create [default: runs/<recipe>-ae-<date>-<time>]; refused if it holds a run."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Optimiser steps [default: training.max_steps, 2000]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Examples per step [default: training.batch_size, 64]."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Random seed [default: training.seed, 0]."),
    accelerator: Optional[str] = typer.Option(None, "--accelerator", help="auto (a GPU if there is one), cpu, cuda or mps [default: auto]."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch's intra-op CPU threads [default: OMP_NUM_THREADS, else half the cores]."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Print the loss every training.log_every steps."),
) -> None:
    """Train the first-stage autoencoder of latent diffusion (Rombach et al. 2022) into a run
    directory of its own: autoencoder.safetensors, config.yaml, metrics.json (reconstruction
    MSE / PSNR on held-out data) and reconstructions/ (original/ and decoded/, written by the
    domain's writer). Then: `diffcore train --plugin RECIPE --set latent.autoencoder=AE_RUN`."""
    from diffcore.platform import autoencoder_run, autoencoder_training

    flags = {k: v for k, v in (("max_steps", max_steps), ("batch_size", batch_size), ("seed", seed), ("accelerator", accelerator),
                                ("threads", threads)) if v is not None}
    top = {"training": flags} if flags else {}
    if autoencoder is not None:
        top["name"] = autoencoder
    res = autoencoder_run.resolve(plugin, config, set_, top or None)
    out = out if out is not None else Path("runs") / f"{res.recipe.name}-ae-{time.strftime('%Y%m%d-%H%M%S')}"
    autoencoder_training.check_out(out)
    metrics = autoencoder_training.train(res, out, progress=progress)
    typer.echo(json.dumps({k: metrics[k] for k in ("mse", "psnr", "l1", "latent_std")}, sort_keys=True))
    typer.echo(f"trained autoencoder {res.spec.name!r} ({metrics['steps']} steps); run directory: {out}")
    same_data = "".join(f" --set {item}" for item in set_ or [] if item.startswith("data."))  # the diffusion run needs the same data
    typer.echo(f"next: diffcore train --plugin {res.recipe.name}{same_data} --set latent.autoencoder={out}")
