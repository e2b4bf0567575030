"""The denoiser: a network's output, whatever it predicts, seen as (x0_hat, eps_hat).

k-diffusion's idea (``external.py``): one wrapper at the edge instead of a branch per
prediction in every sampler. ``Denoiser(model, schedule, prediction)`` turns
``model(x_t, t) -> prediction`` into ``denoiser(x, t) -> (x0_hat, eps_hat)`` and gives the path
coefficients ``denoiser.coef(t) -> (alpha, sigma)`` as Python floats computed once in float64,
so a sampler's per-step cost is a handful of tensor operations.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .forward import check_prediction, solve_x0_eps
from .sde import drift_diffusion
from .schedules import Schedule


class Denoiser:
    """``model(x_t, t) -> prediction`` seen as ``(x0_hat, eps_hat)``.

    ``clip_x0``: clamp x0_hat to [-clip_x0, clip_x0] (data of known range, e.g. images in
    [-1, 1]) and recompute eps_hat from it. ``nfe`` counts model evaluations.
    """

    def __init__(self, model: Callable, schedule: Schedule, prediction: str = "eps", clip_x0: float | None = None):
        self.model, self.schedule = model, schedule
        self.prediction = check_prediction(prediction)
        self.clip_x0 = clip_x0
        self.nfe = 0
        self._coef: dict[float, tuple[float, float, float, float]] = {}

    def _coefs(self, t: float) -> tuple[float, float, float, float]:
        c = self._coef.get(t)
        if c is None:
            s, tt = self.schedule, torch.tensor(t, dtype=torch.float64)
            c = (float(s.alpha(tt)), float(s.sigma(tt)), float(s.d_alpha(tt)), float(s.d_sigma(tt)))
            self._coef[t] = c
        return c

    def prefetch(self, ts) -> None:
        """Compute the coefficients of all the times ``ts`` in one vectorised pass.
        :func:`generate` calls it with the sampler's times: computed one time at a time they
        cost some 60 small tensor operations each, ~15% of the run with a small MLP
        (docs/benchmarks.md). Times not prefetched are still computed on first use."""
        new = [t for t in dict.fromkeys(ts) if t is not None and t not in self._coef]
        if not new:
            return
        s, tt = self.schedule, torch.tensor(new, dtype=torch.float64)
        cols = [s.alpha(tt), s.sigma(tt), s.d_alpha(tt), s.d_sigma(tt)]
        if any(c.shape != tt.shape for c in cols):
            return  # a schedule that does not broadcast over t: keep the per-time path
        for t, *c in zip(new, *(c.tolist() for c in cols)):
            self._coef[t] = tuple(c)

    def coef(self, t: float | None) -> tuple[float, float]:
        """(alpha_t, sigma_t) as floats; ``t=None`` is the clean end (1, 0) of a time grid."""
        if t is None:
            return 1.0, 0.0
        return self._coefs(t)[:2]

    def d_coef(self, t: float) -> tuple[float, float]:
        """(d alpha / dt, d sigma / dt) as floats."""
        return self._coefs(t)[2:]

    def sde(self, t: float) -> tuple[float, float]:
        """(f(t), g(t)^2) of the forward SDE (:func:`diffcore.sde.drift_diffusion`) as floats."""
        return drift_diffusion(*self._coefs(t))

    def __call__(self, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        a, s, da, ds = self._coefs(t)
        out = self.model(x, torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype))
        self.nfe += 1
        x0, eps = solve_x0_eps(self.prediction, out, x, a, s, da, ds)
        if self.clip_x0 is not None:
            x0 = x0.clamp(-self.clip_x0, self.clip_x0)
            eps = (x - a * x0) / s
        return x0, eps

    def velocity(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """dx/dt of the probability-flow ODE, f x - g^2 score / 2 (Song et al. 2021, eq. 13),
        written as alpha' x0_hat + sigma' eps_hat (the same quantity, substituting
        x = alpha x0_hat + sigma eps_hat and score = -eps_hat / sigma)."""
        da, ds = self.d_coef(t)
        x0, eps = self(x, t)
        return da * x0 + ds * eps

    def score(self, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(score, x0_hat) at (x, t): score = -eps / sigma."""
        x0, eps = self(x, t)
        return -eps / self.coef(t)[1], x0


def prior_scale(den: Denoiser, t: float) -> float:
    """Std of x_t for standardised data, sqrt(alpha^2 + sigma^2): 1 on VP paths (as diffusers'
    init_noise_sigma), about sigma_max on VE."""
    return math.hypot(*den.coef(t))
