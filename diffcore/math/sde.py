"""The SDE view (Song et al. 2021): every Gaussian path (alpha, sigma) is the marginal of

    dx = f(t) x dt + g(t) dw,   f = d log(alpha)/dt,   g^2 = d(sigma^2)/dt - 2 f sigma^2,

(the variance of x_t given x_0 obeys d(sigma^2)/dt = 2 f sigma^2 + g^2). For the VP schedule
this gives Song et al.'s f = -beta/2, g^2 = beta (eq. 11); for sub-VP g^2 =
beta (1 - exp(-2 int beta)) (eq. 13); for VE f = 0, g^2 = d(sigma^2)/dt (eq. 9).

Reverse-time SDE (Anderson 1982; Song et al. eq. 6):  dx = [f x - g^2 score] dt + g dw_bar.
Probability-flow ODE (Song et al. eq. 13):            dx/dt = f x - g^2 score / 2.
Both take a score; :meth:`SDE.score_from` turns any prediction into one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import schedules as _schedules
from .forward import bcast, convert
from .schedules import Schedule


def drift_diffusion(a, s, da, ds):
    """(f, g^2) of the forward SDE from the path coefficients alpha, sigma and their time
    derivatives (floats or tensors): f = alpha' / alpha, g^2 = 2 sigma sigma' - 2 f sigma^2.
    The one place these are written: :class:`SDE`, the Euler-Maruyama sampler (through
    ``Denoiser.sde``) and the likelihood's probability-flow velocity use it."""
    f = da / a
    return f, 2 * s * ds - 2 * f * s**2


class SDE:
    """The forward SDE of a schedule, and its reverse / probability-flow counterparts."""

    def __init__(self, schedule: Schedule | str):
        self.schedule = _schedules.get(schedule)

    def coefficients(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(t), g(t)^2) in float64."""
        s = self.schedule
        t = torch.as_tensor(t, dtype=torch.float64)
        return drift_diffusion(s.alpha(t), s.sigma(t), s.d_alpha(t), s.d_sigma(t))

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        f, _ = self.coefficients(t)
        return bcast(f, x) * x

    def diffusion(self, t) -> torch.Tensor:
        """g(t) (float64)."""
        return torch.sqrt(self.coefficients(t)[1].clamp(min=0))

    def marginal(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean coefficient and std of p(x_t | x_0): (alpha(t), sigma(t))."""
        return self.schedule.alpha(t), self.schedule.sigma(t)

    def score_from(self, model: Callable, prediction: str) -> Callable:
        """score_fn(x, t) from a ``model(x, t)`` that returns ``prediction``."""
        return lambda x, t: convert(model(x, t), prediction, "score", x, t, self.schedule)

    def reverse_drift(self, score_fn: Callable, x: torch.Tensor, t: torch.Tensor, *, probability_flow: bool = False) -> torch.Tensor:
        """f x - g^2 score (reverse SDE), or f x - g^2 score / 2 (probability-flow ODE),
        as d x / d t (to be integrated backwards in t)."""
        f, g2 = self.coefficients(t)
        k = 0.5 if probability_flow else 1.0
        return bcast(f, x) * x - k * bcast(g2, x) * score_fn(x, t)

    def ode_velocity(self, score_fn: Callable) -> Callable:
        """v(x, t) = dx/dt of the probability-flow ODE."""
        return lambda x, t: self.reverse_drift(score_fn, x, t, probability_flow=True)
