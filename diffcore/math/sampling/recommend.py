"""The recommended sampler for a step budget: ``sampler="auto"``.

Which sampler and spacing work best at a given number of model evaluations depends on the
path (its family) and the budget, not on the model: it is measured on exact targets, where the
sampler's own error is all there is. The choice is data, not code: ``recommended.py`` is written
by ``benchmarks/frontier.py tune`` from the tuning half of the target suite
(diffcore.testing.suite) and reported on the held-out half in docs/benchmarks.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ..schedules import Schedule
from .grid import tuned_times, usable_steps
from .recommended import RECOMMENDED
from .table import get

AUTO = "auto"
FALLBACK = ("dpm-solver++", "logsnr")  # a family the table has no rows for (e.g. VE)
TUNED = "tuned"  # a row's spacing when it carries its own grid (log-SNR fractions, grid.tuned_times)


def family(schedule: Schedule) -> str:
    """'vp' (alpha^2 + sigma^2 = 1: linear, cosine, vp), 'flow' (alpha + sigma = 1), 've'
    (alpha = 1), or 'other', read off the path itself (so a plugin's schedule has one too)."""
    t = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    a, s = schedule.alpha(t), schedule.sigma(t)
    one = torch.ones_like(a)
    for name, value in (("ve", a), ("flow", a + s), ("vp", a**2 + s**2)):
        if torch.allclose(value, one, atol=1e-9):
            return name
    return "other"


class Recommendation(NamedTuple):
    sampler: str
    spacing: str
    steps: int
    options: dict[str, Any]
    times: tuple[float, ...] | None = None  # the model times of a tuned grid (spacing "tuned")
    row: int | None = None  # the budget of the table row it comes from (None: the fallback)


def recommend(schedule: Schedule, nfe: int) -> Recommendation:
    """(sampler, spacing, steps, options, times, row) for a budget of ``nfe`` model evaluations: the
    rows of the schedule itself (built-in schedules are tuned one by one), else of its family;
    the row of the largest budget that fits (the smallest row if none does), and as many steps
    of that sampler as the budget pays for. A row whose spacing is "tuned" carries its grid as
    log-SNR fractions (its sixth field); ``times`` then holds that grid's model times."""
    if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe < 1:
        raise ValueError(f"steps must be an integer >= 1, got {nfe!r}")
    rows = RECOMMENDED.get(schedule.name) or RECOMMENDED.get(family(schedule), [])
    fitting = [r for r in rows if r[0] <= nfe] or rows[:1]
    sampler, spacing, options = (*fitting[-1][1:4],) if fitting else (*FALLBACK, {})
    spec = get(sampler)
    if spacing in ("leading", "leading-multistep") and not schedule.discrete:
        # DDIM's and the multistep schedulers' leading grids are discrete-only: take the
        # sampler's own spacing there (trailing has a continuous form: grid.timesteps)
        spacing = spec.default_spacing
    steps = spec.steps_within(nfe, options, cap=usable_steps(schedule)) or 1
    times = tuple(tuned_times(schedule, steps, fitting[-1][5])) if spacing == TUNED else None
    return Recommendation(sampler, spacing, steps, dict(options), times, fitting[-1][0] if fitting else None)
