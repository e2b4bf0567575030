"""The forward (noising) process and the five ways a network can predict.

Closed form (Ho et al. 2020, eq. 4; any Gaussian path):
    q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I)                      -> :func:`q_sample`

Posterior between two times s < t of the same path (Ho et al. 2020, eq. 6-7 for adjacent
DDPM steps; Kingma et al. 2021, appendix A for any s < t):
    alpha_{t|s} = alpha_t / alpha_s,   sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2
    q(x_s | x_t, x_0) = N(mu, var),
    mu  = alpha_{t|s} sigma_s^2 / sigma_t^2 x_t + alpha_s sigma_{t|s}^2 / sigma_t^2 x_0
    var = sigma_{t|s}^2 sigma_s^2 / sigma_t^2                        -> :func:`posterior`

Predictions, all functions of (x_t, t):
    eps       the noise                                     (Ho et al. 2020)
    x0        the clean data
    v         alpha eps - sigma x0                          (Salimans & Ho 2022)
    score     grad log p_t(x_t) = -eps / sigma              (Song & Ermon 2019; Vincent 2011)
    velocity  dx_t/dt = alpha' x0 + sigma' eps              (flow matching, Lipman et al. 2023)
Each one determines (x0, eps) given x_t: :func:`to_x0_eps`, and back: :func:`from_x0_eps`.
"""

from __future__ import annotations

import math

import torch

from .schedules import Schedule

PREDICTIONS = ("eps", "x0", "v", "score", "velocity")


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; valid: {', '.join(PREDICTIONS)}")
    return prediction


def bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-example (or scalar) float64 coefficient cast to ``like``'s dtype/device and
    shaped to broadcast over its trailing dimensions."""
    v = v.to(device=like.device, dtype=like.dtype)
    if v.ndim == 0:
        return v
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


_bcast = bcast  # its name before it was public


def coefficients(schedule: Schedule, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_t, sigma_t) cast and broadcast to ``like``."""
    t = t.detach().cpu()
    return bcast(schedule.alpha(t), like), bcast(schedule.sigma(t), like)


def q_sample(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I) in closed form."""
    if noise is None:
        noise = torch.randn_like(x0)
    alpha, sigma = coefficients(schedule, t, x0)
    return alpha * x0 + sigma * noise


def posterior_coefficients(a_t, s_t, a_s, s_s):
    """(c_x, c_x0, std) of q(x_s | x_t, x_0) = N(c_x x_t + c_x0 x_0, std^2) from the path
    coefficients at t and s (floats, or float64 tensors); see the module docstring. The one
    place the posterior is written: DDPM, DDIM's eta and :func:`posterior` use it. Raises
    ValueError where the path is not a diffusion between the two times (the SNR grows)."""
    a_ts = a_t / a_s
    var_ts = s_t**2 - a_ts**2 * s_s**2
    if torch.is_tensor(var_ts):
        bad = bool((var_ts < -1e-12 * (s_t**2).clamp(min=1e-30)).any())
        var_ts, sqrt = var_ts.clamp(min=0.0), torch.sqrt
    else:
        bad = var_ts < -1e-12 * max(s_t**2, 1e-30)
        var_ts, sqrt = max(var_ts, 0.0), math.sqrt
    if bad:
        raise ValueError(
            "this schedule's signal-to-noise ratio does not decrease between two sampling times, "
            "so q(x_s | x_t, x_0) does not exist; use a deterministic sampler ('euler', 'heun', 'dpm-solver++')"
        )
    return a_ts * s_s**2 / s_t**2, a_s * var_ts / s_t**2, sqrt(var_ts * s_s**2) / s_t


def posterior(schedule: Schedule, x_t: torch.Tensor, x0: torch.Tensor, t, s) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q(x_s | x_t, x_0) for s < t (see the module docstring).
    For a discrete schedule with s = t - 1/T this is DDPM's eq. 7 (beta-tilde variance)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    s = torch.as_tensor(s, dtype=torch.float64)
    c_x, c_x0, std = posterior_coefficients(schedule.alpha(t), schedule.sigma(t), schedule.alpha(s), schedule.sigma(s))
    return bcast(c_x, x_t) * x_t + bcast(c_x0, x_t) * x0, bcast(std**2, x_t)


def solve_x0_eps(prediction: str, out: torch.Tensor, x_t: torch.Tensor, a, s, da=None, ds=None):
    """(x0, eps) from a network output given the path coefficients at its time: alpha ``a``,
    sigma ``s`` and, for "velocity", their time derivatives ``da``, ``ds`` (floats, or
    tensors broadcastable to ``x_t``). Solves {x_t = a x0 + s eps, out = c x0 + d eps}."""
    if prediction == "eps":
        return (x_t - s * out) / a, out
    if prediction == "x0":
        return out, (x_t - a * out) / s
    if prediction == "score":  # score = -eps / sigma
        eps = -s * out
        return (x_t - s * eps) / a, eps
    if prediction == "v":  # v = a eps - s x0
        n = a**2 + s**2
        return (a / n) * x_t - (s / n) * out, (s / n) * x_t + (a / n) * out
    if prediction == "velocity":  # u = a' x0 + s' eps
        det = a * ds - s * da
        return (ds / det) * x_t - (s / det) * out, (a / det) * out - (da / det) * x_t
    check_prediction(prediction)
    raise AssertionError  # unreachable


def to_x0_eps(prediction: str, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, schedule: Schedule):
    """(x0, eps) implied by a network output ``out`` of kind ``prediction`` at (x_t, t).
    Coefficients are computed in float64 and cast at the edge."""
    t64 = t.detach().cpu().to(torch.float64)
    a, s = bcast(schedule.alpha(t64), x_t), bcast(schedule.sigma(t64), x_t)
    da = ds = None
    if prediction == "velocity":
        da, ds = bcast(schedule.d_alpha(t64), x_t), bcast(schedule.d_sigma(t64), x_t)
    return solve_x0_eps(prediction, out, x_t, a, s, da, ds)


def from_x0_eps(prediction: str, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The target of kind ``prediction`` for a pair (x0, eps) at time t."""
    t64 = t.detach().cpu().to(torch.float64)
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    a, s = schedule.alpha(t64), schedule.sigma(t64)
    if prediction == "score":
        return -eps / bcast(s, eps)
    if prediction == "v":
        return bcast(a, eps) * eps - bcast(s, eps) * x0
    if prediction == "velocity":
        return bcast(schedule.d_alpha(t64), x0) * x0 + bcast(schedule.d_sigma(t64), eps) * eps
    check_prediction(prediction)
    raise AssertionError  # unreachable


def convert(out: torch.Tensor, source: str, target: str, x_t: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """Convert a prediction of kind ``source`` into kind ``target`` at (x_t, t)."""
    check_prediction(target)
    x0, eps = to_x0_eps(check_prediction(source), out, x_t, t, schedule)
    return from_x0_eps(target, x0, eps, t, schedule)


def x0_error_scale(prediction: str, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """k(t) such that ||pred - target||^2 = k(t) ||x0_hat - x0||^2 at fixed x_t (float64).

    eps: SNR;  x0: 1;  v: (alpha^2 + sigma^2)^2 / sigma^2 (SNR + 1 on VP paths);
    score: alpha^2 / sigma^4;  velocity: (alpha' - sigma' alpha / sigma)^2.
    Used to express every loss weighting as a weight on the x0 error (Kingma & Gao 2023).
    """
    t64 = t.detach().cpu().to(torch.float64)
    a, s = schedule.alpha(t64), schedule.sigma(t64)
    if prediction == "eps":
        return (a / s) ** 2
    if prediction == "x0":
        return torch.ones_like(a)
    if prediction == "v":
        return (a**2 + s**2) ** 2 / s**2
    if prediction == "score":
        return a**2 / s**4
    if prediction == "velocity":
        return (schedule.d_alpha(t64) - schedule.d_sigma(t64) * a / s) ** 2
    check_prediction(prediction)
    raise AssertionError  # unreachable
