"""The sampling plan: every choice of a sampling run, resolved once, then executed.

``SamplingPlan.make(schedule, sampler, steps, spacing, options, ...)`` fills in the defaults
(the sampler's own spacing; every step of a discrete schedule for "ddpm", else 50 steps; the
sampler's option defaults), checks everything against the sampler table and computes the time
grid. :func:`generate` executes a plan; nothing downstream chooses a default again. The CLI and
the run config resolve into the same plan (``diffcore.platform.config.sampling_plan``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import schedules as _schedules
from ..denoiser import Denoiser, prior_scale
from ..forward import check_prediction
from ..guidance import Guidance, guided
from ..schedules import Schedule
from .grid import CLEAN, MIN_LOG_SNR, check_times, grid, usable_steps
from .recommend import AUTO, recommend
from .table import get

DEFAULT_STEPS = 50


@dataclass(frozen=True)
class SamplingPlan:
    """What to run: the schedule, the sampler with its checked options, the time grid ``ts``
    (model times, then the clean end), what the network predicts, the x0 clamp, and the
    guidance: the scale, the variant ("cfg", "interval", "rescaled", "apg", "cfg++") and its
    options (:mod:`diffcore.math.guidance`), applied by whoever holds the condition: the
    platform wraps the network with :meth:`guide`."""

    schedule: Schedule
    sampler: str
    steps: int
    spacing: str
    options: Mapping[str, Any]
    ts: tuple
    prediction: str = "eps"
    clip_x0: float | None = None
    guidance: float = 1.0
    guidance_variant: str = "cfg"
    guidance_options: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = field(default=(), compare=False)  # what was adjusted, one line each, for the user

    @classmethod
    def make(
        cls,
        schedule: Schedule | str,
        sampler: str = "ddim",
        steps: int | None = None,
        spacing: str | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        times: Sequence[float] | None = None,
        prediction: str = "eps",
        clip_x0: float | None = None,
        guidance: float = 1.0,
        guidance_variant: str = "cfg",
        guidance_options: Mapping[str, Any] | None = None,
    ) -> "SamplingPlan":
        """Resolve and check a plan; raises ValueError naming what is wrong. ``times`` gives
        the model times themselves (``spacing="custom"``; ``steps`` is then their count).
        Asking for every step of a discrete schedule whose noisiest steps are skipped (cosine:
        996 of 1000 lie above log-SNR -10.5) runs the usable ones, with a note."""
        schedule = _schedules.get(schedule)
        notes: list[str] = []
        tuned = False  # auto chose a row with its own grid: the plan's spacing says "tuned"
        if sampler == AUTO:
            if times is not None or spacing is not None or options:
                raise ValueError("sampler 'auto' chooses the sampler and its spacing from the step budget; give a sampler to set times, a spacing or options")
            budget = steps if steps is not None else DEFAULT_STEPS
            sampler, spacing, steps, options, times, row_nfe = recommend(schedule, budget)
            given = "".join(f", {k}={v}" for k, v in options.items())
            grid_said = f"{spacing} spacing" if times is None else (
                f"the grid tuned on exact targets for {row_nfe} evaluations" + (f" read at {steps} steps" if steps != row_nfe else "")
                + " (times " + ", ".join(f"{t:.3g}" for t in times) + ")")
            cost = get(sampler).evaluations(steps, get(sampler).check_options(options))
            notes.append(f"sampler 'auto' for {budget} model evaluations on {schedule.name!r}: {sampler} with {grid_said}{given}, "
                         f"{steps} step{'s' if steps != 1 else ''} ({cost} evaluations; docs/benchmarks.md, 'Which sampler should I use')")
            tuned = times is not None
            if tuned:  # the row's grid runs as given times; the plan is labelled "tuned" below
                spacing = None
        spec = get(sampler)
        opts = spec.check_options(options)
        if times is not None:
            if spacing not in (None, "custom") or (steps is not None and steps != len(times)):
                raise ValueError("times: give either times or steps/spacing, not both")
            ts = tuple(check_times(schedule, times)) + (CLEAN,)
            steps, spacing = len(ts) - 1, "tuned" if tuned else "custom"
        else:
            usable = usable_steps(schedule)
            if steps is None:
                steps = usable if (sampler == "ddpm" and usable is not None) else DEFAULT_STEPS
            if usable is not None and isinstance(steps, int) and steps > schedule.num_steps:
                raise ValueError(f"steps={steps} is more than the {schedule.num_steps} steps of the {schedule.name!r} schedule; "
                                 f"use steps <= {schedule.num_steps}")
            if usable is not None and isinstance(steps, int) and usable < steps <= schedule.num_steps:
                notes.append(f"steps={steps}: the {schedule.name!r} schedule's last {schedule.num_steps - usable} steps lie below "
                             f"log-SNR {MIN_LOG_SNR} and are skipped; running its {usable} usable steps")
                steps = usable
            spacing = spacing or spec.spacing()
            ts = tuple(grid(schedule, steps, spacing))
        if clip_x0 is not None and not clip_x0 > 0:
            raise ValueError(f"clip_x0 must be > 0 (or None), got {clip_x0!r}")
        if guidance < 0:
            raise ValueError(f"guidance must be >= 0, got {guidance!r}")
        g = Guidance.make(float(guidance), guidance_variant, guidance_options)
        return cls(schedule, sampler, steps, spacing, opts, ts, check_prediction(prediction), clip_x0, g.scale,
                   g.variant, g.options, tuple(notes))

    def guide(self, net: Callable, cond) -> Callable:
        """``net(x_t, t, cond)`` as ``model(x_t, t)`` under this plan's guidance (a new wrapper
        per run: APG's momentum keeps state); ``cond=None``: the unconditional model."""
        g = Guidance(self.guidance, self.guidance_variant, self.guidance_options)
        return guided(net, cond, g, self.schedule, self.prediction, self.ts)

    def record(self) -> dict[str, Any]:
        """What evaluation and edit records keep of the plan: sampler, steps, spacing, options,
        guidance, and the times where the grid was given as times."""
        return {"sampler": self.sampler, "steps": self.steps, "spacing": self.spacing, "options": dict(self.options),
                "guidance": self.guidance_record(), **self.times_record()}

    def times_record(self) -> dict[str, list[float]]:
        """``{"times": [...]}`` for a grid given as times (spacing "custom", ``--times``; or
        "tuned", the grid of a ``sampler="auto"`` row), which steps and spacing alone cannot
        say; else ``{}``."""
        return {"times": [float(t) for t in self.ts[:-1]]} if self.spacing in ("custom", "tuned") else {}

    def guidance_record(self):
        """The guidance as evaluation records key it: the scale for plain CFG (as records
        before the variants had it), else {"scale", "variant", options...}."""
        if self.guidance_variant == "cfg":
            return self.guidance
        return {"scale": self.guidance, "variant": self.guidance_variant, **self.guidance_options}

    def run(
        self,
        model: Callable,
        noise: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: Callable | None = None,
        noise_fn: Callable | None = None,
    ) -> torch.Tensor:
        """Execute the plan: ``model(x_t, t)`` returns ``self.prediction``; ``noise`` is standard
        normal shaped like the data, scaled here to the prior at the first time."""
        den = self.denoiser(model)
        return self.run_from(den, noise * prior_scale(den, self.ts[0]), generator=generator, callback=callback,
                             noise_fn=noise_fn)

    def denoiser(self, model: Callable) -> Denoiser:
        """``model`` seen as (x0_hat, eps_hat) with this plan's prediction and clamp."""
        den = Denoiser(model, self.schedule, self.prediction, self.clip_x0)
        den.prefetch(self.ts)
        return den

    def run_from(
        self,
        den: Denoiser,
        x: torch.Tensor,
        ts: Sequence | None = None,
        *,
        generator: torch.Generator | None = None,
        callback: Callable | None = None,
        noise_fn: Callable | None = None,
    ) -> torch.Tensor:
        """Run the sampler from ``x`` (already at the first time, not rescaled) along ``ts``
        (default: the plan's whole grid; editing passes its tail)."""
        with torch.no_grad():
            return get(self.sampler).fn(den, x, list(self.ts if ts is None else ts), generator=generator,
                                        callback=callback, noise_fn=noise_fn, **self.options)


def generate(
    model: Callable,
    noise: torch.Tensor,
    schedule: Schedule | str | SamplingPlan,
    *,
    sampler: str = "ddim",
    steps: int | None = None,
    prediction: str = "eps",
    generator: torch.Generator | None = None,
    spacing: str | None = None,
    clip_x0: float | None = None,
    callback: Callable | None = None,
    noise_fn: Callable | None = None,
    **options,
) -> torch.Tensor:
    """Generate samples: ``model(x_t, t)`` returns ``prediction`` ("eps", "x0", "v", "score"
    or "velocity"); ``noise`` is standard normal shaped like the data and is scaled here to
    the schedule's prior at the first time (by sqrt(alpha^2 + sigma^2), the std of x_t for
    standardised data). Either pass a :class:`SamplingPlan` as ``schedule``, or the plan's
    parts: ``steps`` model times (default: every step of a discrete schedule for "ddpm", else
    50), ``spacing`` (see :func:`diffcore.sampling.timesteps`; default: the sampler's), and the
    sampler's own ``options`` (e.g. ``eta=0.5`` for DDIM), checked against its table entry.
    A plan's guidance is not applied here (``model`` has no condition): wrap the network
    with ``plan.guide(net, cond)`` (or :func:`diffcore.classifier_free`) first, as the platform does."""
    if isinstance(schedule, SamplingPlan):
        given = {k: v for k, v in dict(sampler=sampler != "ddim", steps=steps, spacing=spacing, clip_x0=clip_x0,
                                       prediction=prediction != "eps", **options).items() if v not in (None, False)}
        if given:
            raise ValueError(f"a SamplingPlan already fixes {', '.join(given)}; change the plan (SamplingPlan.make) instead")
        plan = schedule
    else:
        plan = SamplingPlan.make(schedule, sampler, steps, spacing, options, prediction=prediction, clip_x0=clip_x0)
        for note in plan.notes:
            warnings.warn(note, stacklevel=2)
    return plan.run(model, noise, generator=generator, callback=callback, noise_fn=noise_fn)
