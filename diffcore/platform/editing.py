"""Editing a trained run: the domain turns the user's inputs into batches with ``known`` and
``keep`` (:meth:`diffcore.Domain.edit_batches`); the mathematics (:mod:`diffcore.math.sampling.
edits`) conditions any sampler on them. Three modes:

``inpaint``
    keep the entries the domain's mask options name, generate the rest (replacement; RePaint
    with ``resample`` > 1); strength 1 by default (from pure noise).
``sdedit``
    noise the input to ``strength`` (default 0.6) and denoise it with the run's model, under
    ``--class``/``--guidance`` if given (Meng et al. 2022); a mask keeps its part exactly.
``invert``
    DDIM-invert the input up to ``strength`` (default 1) with the unconditional model, then
    sample back with DDIM (eta = 0) under the requested class and guidance: with the same
    condition the input comes back; with another, the model's version of it in that class.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import torch

from ..contract.domain import Batch
from ..contract.errors import UserError
from ..math.guidance import classifier_free
from ..math.sampling import SamplingPlan
from ..math.sampling.edits import check_keep, edit, invert, smc
from .runs import Run, _to

MODES = ("inpaint", "sdedit", "invert")
DEFAULT_STRENGTH = {"inpaint": 1.0, "sdedit": 0.6, "invert": 1.0}
EDIT_JSON = "edit.json"


def check_settings(mode: str, strength: float | None, resample: int) -> float:
    """The strength to use; UserError for a mode, strength or resample count out of range."""
    if mode not in MODES:
        raise UserError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    strength = DEFAULT_STRENGTH[mode] if strength is None else strength
    if not (isinstance(strength, (int, float)) and math.isfinite(strength) and 0.0 < strength <= 1.0):
        raise UserError(f"--strength {strength!r}: must be in (0, 1] (1: from pure noise; small: stay close to the input)")
    if not (isinstance(resample, int) and resample >= 1):
        raise UserError(f"--resample {resample!r}: must be an integer >= 1 (1: no RePaint resampling)")
    if resample > 1 and mode == "invert":
        raise UserError("--resample: inversion samples back deterministically; RePaint resampling applies to inpaint and sdedit")
    return float(strength)


def inversion_plan(plan: SamplingPlan) -> SamplingPlan:
    """The plan's grid and guidance with the ddim sampler at eta = 0, what inversion inverts."""
    return dataclasses.replace(plan, sampler="ddim", options={"eta": 0.0})


def edit_run(
    run: Run,
    plan: SamplingPlan,
    batches: Iterable[Batch],
    *,
    mode: str = "inpaint",
    strength: float | None = None,
    resample: int = 1,
    particles: int = 1,
    seed: int = 0,
    progress: bool = True,
) -> list[tuple[torch.Tensor, Batch]]:
    """Edit the domain's batches with the run's model as ``plan`` says: ``[(x, batch)]`` for
    ``domain.write_edits``. ``particles`` > 1: inpaint by SMC (SMCDiff) on the plan's grid with
    DDPM's kernels, K particles per output, one of them returned. ``progress``: lines on stderr when
    it takes long (:mod:`.progress_lines`)."""
    from .progress_lines import track

    strength = check_settings(mode, strength, resample)
    plan = effective_plan(plan, mode, strength, resample, particles)
    gen = torch.Generator(device=run.device).manual_seed(seed)
    domain, results = run.domain, []
    for batch in track(batches, "editing", progress):
        b = _to(batch, run.device)
        known, keep = _inputs(b, domain.name)
        if mode == "inpaint" and keep is None:
            raise UserError("--mode inpaint needs a part to keep: give the domain's mask options "
                            "(`diffcore edit --run RUN --domain-help` lists them), or use --mode sdedit")
        if particles > 1:
            results.append((_smc(run, plan, b, known, keep, particles, gen).cpu(), batch))
            continue
        noise = domain.noise(known, b, generator=gen)
        model = plan.guide(run.net, b.get("cond"))
        start = None
        if mode == "invert":
            start = invert(plan, classifier_free(run.net, b.get("source_cond"), 1.0), known, strength=strength)
        try:
            x = edit(plan, model, noise, known=known, keep=keep, strength=strength, resample=resample, start=start,
                     generator=gen, noise_fn=lambda z, b=b: domain.noise(z, b, generator=gen))
        except ValueError as e:
            raise UserError(str(e)) from None
        mask = b.get("mask")
        results.append(((x * mask.to(x.dtype) if mask is not None else x).cpu(), batch))
    return results


def effective_plan(plan: SamplingPlan, mode: str, strength: float, resample: int, particles: int) -> SamplingPlan:
    """The plan an edit really runs: the ddim sampler at eta 0 for inversion, ddpm for SMC
    particles (which run from pure noise, without RePaint); the plan itself otherwise."""
    if particles > 1:
        if mode != "inpaint" or resample > 1 or strength < 1:
            raise UserError("--particles works with --mode inpaint from pure noise: drop --resample, --strength "
                            "and --mode sdedit/invert, or drop --particles")
        return ddpm_plan(plan)
    return inversion_plan(plan) if mode == "invert" else plan


def ddpm_plan(plan: SamplingPlan) -> SamplingPlan:
    """The plan's grid and guidance with the ddpm sampler, whose Gaussian kernels SMC weighs."""
    return dataclasses.replace(plan, sampler="ddpm", options={})


def _smc(run: Run, plan: SamplingPlan, b: Batch, known: torch.Tensor, keep: torch.Tensor, k: int, gen) -> torch.Tensor:
    """SMC inpainting of one batch: every per-sample tensor of the batch repeated ``k`` times
    (the particles of a sample are consecutive rows), the first particle of each kept."""
    n = known.shape[0]
    cond = b.get("cond")
    if cond is not None and not (isinstance(cond, torch.Tensor) and cond.shape[:1] == (n,)):
        raise UserError(f"--particles: the {run.domain.name!r} domain's conditions are not one tensor row per sample, so its "
                        "batches cannot be split into particles; use --resample instead")

    def rep(v):
        per_sample = isinstance(v, torch.Tensor) and v.dim() == known.dim() and v.shape[0] == n
        return v.repeat_interleave(k, 0) if per_sample or v is cond else v

    big = {key: rep(v) for key, v in b.items()}
    big["shape"] = (n * k, *known.shape[1:])
    kn, kp = big["known"].float(), rep(keep)
    model = plan.guide(run.net, big.get("cond"))
    try:
        x = smc(plan, model, run.domain.noise(kn, big, generator=gen), known=kn, keep=kp, particles=k, generator=gen,
                noise_fn=lambda z: run.domain.noise(z, big, generator=gen))
    except ValueError as e:
        raise UserError(str(e)) from None
    x = x.view(n, k, *known.shape[1:])[:, 0]
    mask = b.get("mask")
    return x * mask.to(x.dtype) if mask is not None else x


def _inputs(b: Batch, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The batch's ``known`` and ``keep`` (None when nothing is kept), checked: a plugin's
    mistake here is reported as the plugin's."""
    known, keep = b.get("known"), b.get("keep")
    shape = tuple(b["shape"])
    if not isinstance(known, torch.Tensor) or tuple(known.shape) != shape:
        got = tuple(known.shape) if isinstance(known, torch.Tensor) else type(known).__name__
        raise UserError(f"the {name!r} domain's edit_batches gave `known` of shape {got}, not the batch shape {shape} (a plugin bug)")
    if not bool(torch.isfinite(known).all()):
        raise UserError("the input holds values that are not finite (NaN or inf); check the input file")
    if keep is None:
        return known.float(), None
    try:
        keep = check_keep(known, torch.as_tensor(keep, device=known.device).float())
    except ValueError as e:
        raise UserError(f"the mask does not fit the input: {e}") from None
    return known.float(), keep

def record(plan: SamplingPlan, *, mode: str, strength: float, resample: int, particles: int, seed: int, inputs,
           num: int, classes, domain_options, weights) -> dict[str, Any]:
    """What ``edit.json`` records: every setting of the edit, with the plan it really ran
    (:func:`effective_plan`), input files as absolute paths, the domain's mask options."""
    from pathlib import Path

    return {"mode": mode, "strength": strength, "resample": resample, "particles": particles, "seed": seed,
            "inputs": [str(Path(i).resolve()) if Path(i).is_file() else i for i in inputs], "num": num,
            "classes": list(classes or []),
            "domain_options": domain_options.model_dump(mode="json") if domain_options is not None else {},
            **plan.record(), "weights": str(weights)}
