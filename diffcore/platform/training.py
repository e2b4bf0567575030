"""Training with Lightning: one LightningModule over (schedule, loss, backbone) for every domain.

The mathematics stays in :mod:`diffcore.losses`; this module adds what a run needs around it:
EMA weights, AdamW with warm-up, the domain's data loader, Lightning's Trainer (so CPU, GPU
and multi-node DDP are the same command), checkpoints, CSV metrics and preview samples; what it
logs is in :mod:`.training_logs`, ``training.compile`` and ``channels_last`` in :mod:`.throughput`.

Under ``--strategy ddp`` Lightning re-launches the same command line once per extra
process; those processes (rank > 0) train but write nothing to the run directory.
A run is a transaction (:mod:`.runfiles`); SIGINT/SIGTERM stop it with a checkpoint (:mod:`.interrupts`).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins import TorchCheckpointIO
from torch import nn
from torch.utils.data import DataLoader

from . import extensions, fsdp, interrupts, latent, runfiles, runs, throughput, training_logs
from .csvlog import RunCSVLogger
from .progress import progress_bar
from .runfiles import Prepared, check_resume_checkpoint, prepare_run_dir  # noqa: F401  (the CLI's and callers' names)
from .config import Resolved, RunConfig, preview_plan, to_yaml
from ..contract import legacy
from ..contract.domain import Domain
from ..contract.errors import UserError
from ..math.losses import DiffusionLoss
from ..math.sampling import SamplingPlan

# ----------------------------------------------------------------------- module
class DiffusionModule(L.LightningModule):
    """The denoising objective of one backbone, with an EMA copy of its weights.

    The checkpoint holds the module's ``state_dict`` (``backbone.*`` and ``ema.*`` tensors),
    the optimiser state and Lightning's loop counters -- tensors and plain types only, so it
    loads with ``torch.load(weights_only=True)``. No hyper-parameters are pickled: the run's
    config.yaml is the source of truth.
    """

    def __init__(self, backbone: nn.Module, schedule, config: RunConfig, domain: Domain, plan: SamplingPlan):
        super().__init__()
        self.backbone = backbone
        # EMA of the weights (Polyak averaging; DDPM samples with decay 0.9999). A copy that
        # never receives gradients; buffers are copied as they are.
        self.ema = copy.deepcopy(backbone).requires_grad_(False)
        d = config.diffusion
        self.loss_fn = DiffusionLoss(schedule, prediction=d.prediction, weighting=d.weighting, min_snr_gamma=d.min_snr_gamma,
                                     period=getattr(domain, "period", None))
        self.schedule = schedule
        self.cfg = config
        self.domain = domain
        self.plan = plan  # previews sample as the config's sampling section (and training.preview_steps) say
        self.preview_cost = training_logs.PreviewCost()

    def forward(self, x_t, t, cond=None):
        return self.backbone(x_t, t, cond)

    def configure_model(self) -> None:
        fsdp.shard(self)  # --strategy fsdp: the backbone and the EMA sharded alike (else nothing)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """The denoising loss of one batch (the training step's; :mod:`.throughput` compiles with it)."""
        return self.loss_fn(self.backbone, batch["x"], cond=batch.get("cond"), mask=batch.get("mask"),
                            noise_fn=lambda like: self.domain.noise(like, batch))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch["x"].shape[0])
        return loss

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        batch = latent.encode_batch(self.domain, batch)  # latent diffusion: x -> scaled latents (else unchanged)
        return throughput.to_channels_last(batch) if self.cfg.training.channels_last else batch

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.log("ema_decay", self.update_ema(), on_step=True, on_epoch=False, batch_size=batch["x"].shape[0])

    @torch.no_grad()
    def update_ema(self) -> float:
        """One EMA update; returns its decay."""
        step = self.global_step
        # Warm-up of the decay (as in many EMA implementations): early weights are forgotten fast.
        decay = min(self.cfg.training.ema_decay, (1 + step) / (10 + step))
        for e, p in zip(self.ema.parameters(), self.backbone.parameters()):
            e.lerp_(p.detach().to(e.dtype), 1.0 - decay)
        for e, b in zip(self.ema.buffers(), self.backbone.buffers()):
            e.copy_(b)
        return decay

    def configure_optimizers(self):
        tc = self.cfg.training
        opt = torch.optim.AdamW(self.backbone.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        # The factor follows the trainer's global step, not the scheduler's own counter: a run
        # resumed from a checkpoint without scheduler state (or with another lr_schedule) then
        # continues at the right place instead of restarting its warm-up or cosine.
        def factor(_: int) -> float:
            trainer = getattr(self, "_trainer", None)
            return lr_factor(trainer.global_step if trainer is not None else 0, tc)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def lr_factor(step: int, tc) -> float:
    """The learning rate at optimiser step ``step`` (0-based) as a fraction of ``training.lr``:
    a linear warm-up over ``warmup_steps``, then constant, or half a cosine down to
    ``lr_final_fraction`` at ``max_steps`` (Loshchilov & Hutter 2017, without restarts)."""
    if step < tc.warmup_steps:
        return (step + 1) / tc.warmup_steps
    if tc.lr_schedule == "constant":
        return 1.0
    span = max(1, tc.max_steps - tc.warmup_steps)
    progress = min(1.0, (step - tc.warmup_steps) / span)
    return tc.lr_final_fraction + (1 - tc.lr_final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


# -------------------------------------------------------------------- callbacks
def write_previews(module: DiffusionModule, run_dir: Path, tag: str) -> list[Path]:
    """EMA samples under RUN/previews/<tag>/ through the domain's writer."""
    num = module.cfg.training.preview_num
    if num <= 0:
        return []
    net = fsdp.plain_ema(module)
    was_training = net.training
    net.eval()
    try:
        return _write_previews(module, net, run_dir, tag, num)
    finally:
        net.train(was_training)
        fsdp.release(module)


def _write_previews(module: DiffusionModule, net: nn.Module, run_dir: Path, tag: str, num: int) -> list[Path]:
    cfg = module.cfg
    out = run_dir / runs.PREVIEWS / tag
    out.mkdir(parents=True, exist_ok=True)
    # fork_rng: previews must not change the training's random stream (same weights with or
    # without previews); the fixed seed makes previews comparable across steps.
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        gen = torch.Generator(device=module.device).manual_seed(cfg.training.seed)
        results = []
        for batch in module.domain.sample_batches(num, min(num, cfg.sampling.batch_size)):
            x = runs.generate_batch(net, module.plan, module.domain, batch, generator=gen, device=module.device)
            results.append((x.float().cpu(), batch))
        return legacy.write_samples(module.domain, results, out, None)


def safe_previews(module: DiffusionModule, run_dir: Path, tag: str) -> list[Path]:
    """:func:`write_previews`, but a failure (a writer's missing library, a full disk) is
    reported and training goes on or finishes: the weights already written are kept. With
    ``DIFFCORE_STRICT_PLUGINS=1`` (``--strict-plugins``) the error propagates, for plugin
    authors."""
    from .registry import strict_mode

    try:
        return write_previews(module, run_dir, tag)
    except Exception as e:
        if strict_mode():
            raise
        print(
            f"warning: preview samples {tag} could not be written ({type(e).__name__}: {e}); training is not "
            f"affected and the weights are in {run_dir}: once the cause is fixed, `diffcore sample --run {run_dir}` "
            "writes samples (--strict-plugins shows the traceback)",
            file=sys.stderr,
        )
        return []


def timed_previews(trainer, module: DiffusionModule, run_dir: Path, tag: str) -> None:
    """:func:`safe_previews`, its seconds and picture logged (:func:`training_logs.preview_written`)."""
    start = time.perf_counter()
    paths = safe_previews(module, run_dir, tag)
    if module.cfg.training.preview_num > 0:
        training_logs.preview_written(trainer, module.preview_cost, paths, time.perf_counter() - start, module.cfg.training.preview_num)


class Previews(Callback):
    """Preview samples every ``every`` steps (rank 0 only)."""

    def __init__(self, run_dir: Path, every: int):
        self.run_dir, self.every = run_dir, every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        # The last step's previews are written by FinishRun.
        if self.every > 0 and step % self.every == 0 and step < trainer.max_steps and pl_module.cfg.training.preview_num > 0:
            fsdp.gather_ema(pl_module)  # every rank: a collective under fsdp
            if trainer.is_global_zero and not interrupts.received():
                timed_previews(trainer, pl_module, self.run_dir, f"step-{step:07d}")


class FinishRun(Callback):
    """At the end of training (also when a signal stopped it): last.ckpt (every rank takes
    part), then on rank 0 the safetensors weights and, unless stopped by a signal, the final
    previews."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def on_train_end(self, trainer, pl_module) -> None:
        trainer.save_checkpoint(self.run_dir / runs.LAST_CKPT, weights_only=False)  # full state, for --resume
        fsdp.gather_ema(pl_module)  # every rank: collectives under fsdp
        model = fsdp.full_state(pl_module.backbone)
        if not trainer.is_global_zero:
            return
        runs.save_weights(fsdp.plain_ema(pl_module), self.run_dir / runs.EMA_WEIGHTS)
        runs.save_weights(model, self.run_dir / runs.MODEL_WEIGHTS)
        if interrupts.received() is None:
            timed_previews(trainer, pl_module, self.run_dir, f"step-{trainer.global_step:07d}")


class StopOnSignal(Callback):
    """SIGINT/SIGTERM (recorded by :func:`interrupts.catching`) set ``trainer.should_stop``
    after the current step, agreed over every rank (a signal may reach rank 0 only), so every
    rank stops at the same step and :class:`FinishRun` writes a resumable last.ckpt."""

    def on_train_start(self, trainer, pl_module) -> None:
        interrupts.reinstall()  # Lightning installed its own SIGTERM handler at the start of fit
        self._check(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check(trainer)

    def _check(self, trainer) -> None:
        stop = interrupts.received() is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            trainer.should_stop = True


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints (last.ckpt, step=N.ckpt) written to a temporary file beside the
    target and renamed over it: a kill while saving leaves the previous checkpoint intact."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        runfiles.atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


# ------------------------------------------------------------------------ data
def make_loader(domain: Domain, config: RunConfig) -> DataLoader:
    tc = config.training
    ds = domain.train_dataset()
    n = len(ds)
    if n == 0:
        raise UserError(f"the {domain.name!r} domain's training set is empty; check the data: section of the config")
    return DataLoader(
        ds,
        batch_size=tc.batch_size,
        shuffle=True,
        collate_fn=latent.inner_of(domain).collate,  # a latent view's workers need not pickle its autoencoder
        num_workers=tc.num_workers,
        persistent_workers=tc.num_workers > 0,
        # Full batches only, unless the data set is smaller than one batch.
        drop_last=n >= tc.batch_size,
    )


# ------------------------------------------------------------------------ runs
def _quiet_lightning() -> None:
    # Lightning's info lines (GPU available, TPU available, ...) drown the progress bar.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric.utilities.rank_zero").setLevel(logging.WARNING)
    for msg in (
        r".*does not have many workers.*",
        r".*log_every_n_steps.*",
        r".*Experiment logs directory.*",
        r".*Checkpoint directory .* exists and is not empty.*",
        r".*isn't a valid file.*",
        r".*LeafSpec.*",  # Lightning 2.6 on torch 2.14: a deprecation inside Lightning
        # --resume restarts the interrupted epoch's data order (documented in docs/cli.md)
        r".*resuming from a checkpoint that ended before the epoch ended.*",
    ):
        warnings.filterwarnings("ignore", message=msg)


RESUME_ENV = "_DIFFCORE_DDP_RESUME_FROM"  # the checkpoint rank 0 chose, for the processes DDP launches


def train(resolved: Resolved, run_dir: Path, *, resume: bool = False, progress: bool = True,
          start: runfiles.ResumePoint | None = None, added: extensions.Added | None = None) -> L.Trainer:
    """Train the resolved config into ``run_dir`` (already prepared by rank 0; ``start``: the
    checkpoint :func:`prepare_run_dir` chose for a resume; ``added``: the config's callbacks and
    logger, else built here by :func:`extensions.build`). Raises
    :class:`interrupts.Interrupted` when SIGINT/SIGTERM stopped it (after writing last.ckpt)."""
    with interrupts.catching():
        return _train(resolved, Path(run_dir).resolve(), resume, progress, start, added)


def _train(resolved: Resolved, run_dir: Path, resume: bool, progress: bool, start, added) -> L.Trainer:
    _quiet_lightning()
    cfg = resolved.config
    tc = cfg.training
    rank0 = runs.launcher_rank() == 0
    added = added if added is not None else extensions.build(tc, run_dir)  # before any file is written
    os.environ[runs.RUN_DIR_ENV] = str(run_dir)  # inherited by the processes DDP launches
    if rank0 or not resume:
        os.environ.pop(RESUME_ENV, None)
    ckpt_path = os.environ.get(RESUME_ENV) if resume else None
    if resume and not ckpt_path:  # processes DDP launched use the checkpoint rank 0 checked
        start = start or runfiles.resume_point(run_dir, tc.max_steps)
        ckpt_path = os.environ[RESUME_ENV] = str(start.path)
    L.seed_everything(tc.seed, workers=True, verbose=False)
    runs.use_threads(tc.threads)
    if tc.devices * tc.num_nodes > 1:
        runs.keep_threads()

    interrupts.check()
    domain, net = runs.build_model(resolved, run_dir)
    module = DiffusionModule(throughput.prepare_backbone(net, tc), resolved.schedule(), cfg, domain, preview_plan(cfg))
    loader = make_loader(domain, cfg)

    callbacks: list[Callback] = [StopOnSignal(), training_logs.RunScalars(module.preview_cost), Previews(run_dir, tc.preview_every),
                                 FinishRun(run_dir), *added.callbacks]
    if progress:
        callbacks.append(progress_bar())
    if tc.checkpoint_every > 0:
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir / runs.CHECKPOINTS,
                filename="step={step}",
                auto_insert_metric_name=False,
                every_n_train_steps=tc.checkpoint_every,
                save_top_k=-1,
                save_last=True,  # keeps last.ckpt fresh in case the run is interrupted
                enable_version_counter=False,
            )
        )
    # Trainer(deterministic=...) switches torch's global flag; it is given back after fit
    # for callers that go on in the same process (notebooks, tests).
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        trainer = L.Trainer(
            default_root_dir=run_dir,
            max_steps=tc.max_steps,
            max_epochs=-1,
            accelerator=tc.accelerator,
            devices=tc.devices,
            num_nodes=tc.num_nodes,
            strategy=fsdp.strategy(tc.strategy, tc.devices * tc.num_nodes),
            precision=tc.precision,
            gradient_clip_val=tc.grad_clip,
            deterministic="warn" if tc.deterministic else None,
            logger=[RunCSVLogger(run_dir, flush_logs_every_n_steps=max(1, tc.log_every)), *added.loggers],  # metrics.csv first
            log_every_n_steps=tc.log_every,
            callbacks=callbacks,
            enable_checkpointing=tc.checkpoint_every > 0 or any(isinstance(c, ModelCheckpoint) for c in added.callbacks),
            enable_progress_bar=progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            plugins=[AtomicCheckpointIO()],
        )
    except Exception as e:  # MisconfigurationException, ValueError: a wrong accelerator/strategy/precision
        raise UserError(f"training.accelerator/devices/strategy/precision: {e}") from None
    try:
        if tc.compile:  # compiled now, so that a machine where torch.compile cannot run leaves no run behind
            took = throughput.compile_backbone(module, loader, trainer)
            if rank0:
                print(f"compiled the backbone in {took:.1f} s (training.compile)")
        if rank0:
            _write_start(run_dir, cfg, domain, module, start)
        began = time.perf_counter()
        # Lightning reads the checkpoint with torch.load(weights_only=True); prepare_run_dir has
        # already read it the same way, with a clear message for a file it refuses.
        trainer.fit(module, train_dataloaders=loader, ckpt_path=ckpt_path, weights_only=True)
    except (KeyboardInterrupt, SystemExit):
        # A second Ctrl-C (Lightning turns it into SystemExit(1)), or Lightning's own
        # SIGTERMException if the signal came while its handler was installed: no new checkpoint.
        if interrupts.received() is None:
            raise
        raise interrupts.Interrupted(interrupts.received()) from None
    finally:
        torch.use_deterministic_algorithms(was_deterministic, warn_only=warn_only)
    if module.preview_cost.count:
        print(module.preview_cost.line(time.perf_counter() - began, module.plan.steps))
    if interrupts.received() is not None:
        raise interrupts.Interrupted(interrupts.received(), trainer.global_step, complete=trainer.global_step >= tc.max_steps)
    return trainer


def _write_start(run_dir: Path, cfg: RunConfig, domain: Domain, module: DiffusionModule, start) -> None:
    """domain_state.json and config.yaml (rank 0), once everything is checked: the backbone
    built (and compiled), a resumed checkpoint known to fit."""
    try:
        state = json.dumps(domain.state_dict(), indent=2)
    except TypeError as e:
        raise UserError(f"the {domain.name!r} domain's state_dict() is not JSON-serialisable ({e}); this is a bug in its plugin") from None
    if start is not None:  # everything is checked before the run's files are rewritten
        own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        runfiles.check_fits(start, own, runfiles.changes(run_dir, cfg))
    interrupts.check()
    runfiles.write_text_atomic(run_dir / runs.DOMAIN_STATE, state + "\n")
    runfiles.write_text_atomic(run_dir / runs.CONFIG, to_yaml(cfg))
