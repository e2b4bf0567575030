"""Training losses: one function of (schedule, prediction, weighting) for any model.

Every diffusion loss here is a weighted regression of the model's prediction onto its target
at a random time t (Ho et al. 2020, eq. 14; Kingma & Gao 2023 for the common view):

    L = E_{t, x0, eps} [ lambda(t) || model(x_t, t) - target(x0, eps, t) ||^2 ],
    x_t = alpha_t x0 + sigma_t eps.

``prediction`` picks the target (see :mod:`diffcore.forward`); ``weighting`` picks lambda:

``uniform``
    lambda = 1: the plain MSE of the chosen prediction. With "eps" this is DDPM's simple
    loss; with "velocity" on the "flow" schedule it is (conditional) flow matching
    (Lipman et al. 2023).
``snr``
    weight SNR(t) on the x0 error, the same for every prediction. It equals the eps-MSE,
    and with "score" it is the denoising score matching loss of SMLD, lambda(sigma) = sigma^2
    (Song & Ermon 2019, eq. 6) on the VE schedule.
``min-snr``
    weight min(SNR(t), gamma) on the x0 error (Min-SNR-gamma, Hang et al. 2023).

The x0-space weights are converted to the prediction's own error with
:func:`diffcore.forward.x0_error_scale`.

On a torus (``period``, e.g. 2 pi for angles: :mod:`diffcore.math.torus`) x_t = x0 + sigma_t eps
is read modulo the period, so the eps in the target is replaced by its posterior mean over every
lift, -sigma grad log of the wrapped normal (torsional diffusion's denoising score matching);
the schedule must keep alpha = 1 (``ve``).

Training times: discrete schedules draw a step i ~ U{1..T} (t = i / T); continuous ones
draw t ~ U[t_min, t_max].
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .forward import bcast, check_prediction, from_x0_eps, q_sample, x0_error_scale
from .schedules import Schedule
from .torus import wrapped_eps
from . import schedules as _schedules

WEIGHTINGS = ("uniform", "snr", "min-snr")
#: what a network can predict on a torus: quantities that do not change when x0 moves by a period
PERIODIC_PREDICTIONS = ("eps", "score", "velocity")


def sample_t(schedule: Schedule, batch: int, *, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training times, float32 ``[batch]`` (see the module docstring)."""
    if schedule.discrete:
        i = torch.randint(1, schedule.num_steps + 1, (batch,), generator=generator)
        t = i.to(torch.float64) / schedule.num_steps
    else:
        u = torch.rand(batch, generator=generator, dtype=torch.float64)
        t = schedule.t_min + (schedule.t_max - schedule.t_min) * u
    return t.to(device=device, dtype=torch.float32)


def check_period(schedule: Schedule, period: float | None) -> float | None:
    """``period`` as a float (None: Euclidean data); a ValueError unless it is positive and
    finite and the schedule keeps alpha = 1 at every time (a torus needs the ``ve`` schedule)."""
    if period is None:
        return None
    period = float(period)
    if not (period > 0 and period < float("inf")):
        raise ValueError(f"period must be a positive finite number, got {period}")
    t = torch.linspace(float(getattr(schedule, "t_min", 0.0)), 1.0, 11, dtype=torch.float64)
    if float(schedule.log_alpha(t).abs().max()) > 1e-9:
        raise ValueError(f"periodic data (period {period:g}) need a schedule with alpha = 1 such as 've', "
                         f"not {getattr(schedule, 'name', schedule)!r}: alpha_t x0 of an angle is not an angle")
    return period


def check_periodic_prediction(prediction: str, period: float | None) -> None:
    """A ValueError if ``prediction`` cannot be learned on periodic data (``period`` not None)."""
    if period is not None and prediction not in PERIODIC_PREDICTIONS:
        raise ValueError(f"prediction {prediction!r} on periodic data: its target moves by the period when x0 is "
                         f"another lift of the same angle, which a periodic network cannot follow; use one of "
                         f"{', '.join(PERIODIC_PREDICTIONS)}")


class DiffusionLoss:
    """``loss = DiffusionLoss(schedule, "eps", "uniform"); loss(model, x0)``.

    ``model(x_t, t, cond)`` (or ``model(x_t, t)`` when ``cond`` is None) returns the
    prediction. ``mask`` (broadcastable to x0) restricts the average to real entries;
    ``noise_fn(like)`` draws the domain's noise (default: standard normal). ``period``: the data
    live on a torus of that period in every coordinate (module docstring).
    """

    def __init__(self, schedule: Schedule | str, prediction: str = "eps", weighting: str = "uniform", min_snr_gamma: float = 5.0,
                 period: float | None = None):
        self.schedule = _schedules.get(schedule)
        self.prediction = check_prediction(prediction)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
        if min_snr_gamma <= 0:
            raise ValueError("min_snr_gamma must be > 0")
        self.weighting, self.gamma = weighting, float(min_snr_gamma)
        self.period = check_period(self.schedule, period)
        check_periodic_prediction(self.prediction, self.period)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """lambda(t) applied to the prediction's squared error (float64, ``[B]``)."""
        if self.weighting == "uniform":
            return torch.ones_like(t, dtype=torch.float64)
        snr = torch.exp(self.schedule.log_snr(t.detach().cpu().to(torch.float64)))
        w_x0 = snr if self.weighting == "snr" else snr.clamp(max=self.gamma)
        return w_x0 / x0_error_scale(self.prediction, t, self.schedule)

    def __call__(
        self,
        model: Callable,
        x0: torch.Tensor,
        cond=None,
        *,
        mask: torch.Tensor | None = None,
        noise_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        t: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        b = x0.shape[0]
        if t is None:
            t = sample_t(self.schedule, b, device=x0.device, generator=generator)
        if noise_fn is not None:
            eps = noise_fn(x0)
        else:
            eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = q_sample(self.schedule, x0, t, eps)
        out = model(x_t, t) if cond is None else model(x_t, t, cond)
        if self.period is not None:  # eps -> E[eps | x_t mod period]; x0 below is only what from_x0_eps needs
            eps = wrapped_eps(eps, bcast(self.schedule.sigma(t.detach().cpu()), eps), self.period)
            x0 = x_t - bcast(self.schedule.sigma(t.detach().cpu()), eps) * eps
        target = from_x0_eps(self.prediction, x0, eps, t, self.schedule)
        err = (out - target) ** 2
        w = bcast(self.weight(t), err)
        if mask is None:
            return (w * err).mean()
        m = mask.to(err.dtype).expand_as(err)
        return (w * err * m).sum() / m.sum().clamp(min=1.0)
