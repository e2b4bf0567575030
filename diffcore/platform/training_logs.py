"""What a run logs besides its loss, to RUN/metrics.csv and to the logger ``training.logger``
adds (:mod:`.extensions`), through Lightning's logger API:

- ``lr``: the learning rate of the step (after warm-up and schedule);
- ``ema_decay``: the decay of the step's EMA update (warmed up, see ``training.ema_decay``);
- ``samples_per_s``: examples trained per second over all processes, the wall time from the end
  of the previous step to the end of this one (data loading included, previews excluded);
- ``preview_s``: at each preview, the seconds it took (at the step the preview is named after);
- the preview's picture (the grid of an image run, the spectrograms of an audio run: the
  largest PNG/JPEG file the domain's writer returned), for loggers with an image API: TensorBoard,
  Weights & Biases, MLflow (as an artifact); others (CSV) skip it. A domain that writes no
  picture (molecules: SDF files) logs none.

At the end :class:`PreviewCost` says in one line what the previews cost.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger  # their packages are imported when used

PICTURES = (".png", ".jpg", ".jpeg")
PREVIEW_KEY = "preview"
IMAGE_LOGGERS = (TensorBoardLogger, WandbLogger, MLFlowLogger)  # the loggers :func:`log_picture` knows


@dataclass
class PreviewCost:
    """The previews of one training process: how many, of how many samples, and their seconds."""

    count: int = 0
    samples: int = 0
    seconds: float = 0.0

    def line(self, run_seconds: float, steps: int) -> str:
        """``previews: 3 x 16 samples (50 sampling steps), 4.1 s (6.8% of the run) ...``"""
        share = f" ({100 * self.seconds / run_seconds:.1f}% of the run)" if run_seconds > 0 else ""
        return (f"previews: {self.count} x {self.samples // max(1, self.count)} samples ({steps} sampling steps), "
                f"{self.seconds:.1f} s{share}; training.preview_num, preview_steps and preview_every set their cost")


class RunScalars(Callback):
    """Logs ``lr`` (at the start of each step) and ``samples_per_s`` (at its end); the module
    logs ``loss`` and ``ema_decay``."""

    def __init__(self, cost: PreviewCost, clock=time.perf_counter):
        self.cost, self.clock = cost, clock
        self.last, self.previews = 0.0, 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.last, self.previews = self.clock(), self.cost.seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        pl_module.log("lr", lr, on_step=True, on_epoch=False, batch_size=_size(batch))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now, previews = self.clock(), self.cost.seconds
        seconds = now - self.last - (previews - self.previews)
        self.last, self.previews = now, previews
        n = _size(batch)
        if seconds > 0:
            pl_module.log("samples_per_s", n * trainer.world_size / seconds, on_step=True, on_epoch=False, batch_size=n)


def _size(batch) -> int:
    return int(batch["x"].shape[0])


def preview_written(trainer, cost: PreviewCost, paths: list[Path], seconds: float, num: int) -> None:
    """Count a preview of ``num`` samples that took ``seconds``, and log its seconds and its
    picture to the trainer's loggers (rank 0 writes previews; Lightning's loggers write on rank
    0 only)."""
    cost.count, cost.samples, cost.seconds = cost.count + 1, cost.samples + num, cost.seconds + seconds
    step = trainer.global_step
    path = picture(paths) if any(isinstance(lg, IMAGE_LOGGERS) for lg in trainer.loggers) else None
    for logger in trainer.loggers:
        logger.log_metrics({"preview_s": seconds}, step=step)
        if path is None or not isinstance(logger, IMAGE_LOGGERS):
            continue
        try:
            log_picture(logger, PREVIEW_KEY, path, step)
        except Exception as e:  # a logger's service or package failing must not stop training
            print(f"warning: the preview picture {path} could not be logged to {type(logger).__name__} "
                  f"({type(e).__name__}: {e}); training goes on", file=sys.stderr)


def picture(paths: list[Path]) -> Path | None:
    """The picture a preview shows: the largest PNG/JPEG file (in bytes; the last of equals)
    among the files a domain's writer returned, which is its grid where it writes one."""
    found = [(p.stat().st_size, i, p) for i, p in enumerate(map(Path, paths)) if p.suffix.lower() in PICTURES and p.is_file()]
    return max(found)[2] if found else None


def log_picture(logger, key: str, path: Path, step: int) -> bool:
    """The picture at ``path`` through ``logger``'s own image API: TensorBoard's ``add_image``,
    W&B's ``log_image``, MLflow's ``log_artifact`` (under ``key/step-NNNNNNN``); False for a
    logger without one."""
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(key, _pixels(path), step, dataformats="HWC")
    elif isinstance(logger, WandbLogger):
        logger.log_image(key=key, images=[str(path)], step=step)
    elif isinstance(logger, MLFlowLogger):
        logger.experiment.log_artifact(logger.run_id, str(path), f"{key}/step-{step:07d}")
    else:
        return False
    return True


def _pixels(path: Path):
    """The picture as an RGB uint8 array, height x width x 3 (alpha dropped, grey repeated)."""
    import numpy as np
    from matplotlib import image

    a = image.imread(path)  # PNG: floats in [0, 1] (8 or 16 bits); JPEG: uint8
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3]
