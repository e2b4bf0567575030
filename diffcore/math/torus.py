"""Diffusion on a torus: wrapped normals and the denoising target that respects them.

Torsion angles of a molecule, phases, directions in the plane: data whose every coordinate is
periodic with period P (2 pi for angles). Torsional diffusion (Jing et al. 2022, sec. 3) runs
the variance-exploding SDE on the torus T^n = R^n / (P Z)^n: the forward process adds Brownian
motion and wraps, so the transition kernel of each coordinate is the wrapped normal

    p_sigma(d) = sum_k N(d + P k; 0, sigma^2),   k in Z,   d = x_t - x_0,

which tends to the uniform density 1 / P as sigma grows (within 1.5 % once sigma = P / 2):
the VE prior N(0, sigma_max^2), wrapped, is the uniform prior of torsional diffusion.

diffcore runs its samplers unchanged on the covering space R^n. That is exact when the network
is periodic in x_t (it sees the angles only through what they build, e.g. a conformer): the
torus SDE lifted to R^n is the R^n SDE with a periodic score, x0 = x_t - sigma eps commutes with
the covering map, and one :func:`wrap` at the end gives the sample on the torus.

What changes is the training target. A periodic network sees x_t only modulo P, so the eps it
should predict is the posterior mean of the noise over every lift of the displacement:

    E[eps | d mod P] = sum_k ((d + P k) / sigma) w_k / sum_k w_k,   w_k = N(d + P k; 0, sigma^2),

which is -sigma grad log p_sigma(d): denoising score matching on the torus (Jing et al. 2022,
eq. 4) written as an eps target (:func:`wrapped_eps`). Regressing on the raw eps has the same
minimiser but more variance; :class:`diffcore.DiffusionLoss` uses this target when it is given a
``period``. Only schedules with alpha = 1 (``ve``) make sense here: a shrinking alpha x0 is
not an angle.
"""

from __future__ import annotations

import math

import torch

TWO_PI = 2.0 * math.pi


def wrap(x: torch.Tensor, period: float = TWO_PI) -> torch.Tensor:
    """``x`` mapped to the fundamental interval [-period / 2, period / 2) (in float32 a value
    just below period / 2 may round up to it)."""
    half = period / 2.0
    return torch.remainder(x + half, period) - half


def _terms(sigma: torch.Tensor, period: float) -> int:
    """How many images k on each side keep the truncated sum exact to float64: terms with
    |d + P k| > 10 sigma + P weigh below exp(-50)."""
    s = float(sigma.max()) if sigma.numel() else 0.0
    return int(math.ceil(10.0 * s / period)) + 2


def _images(d: torch.Tensor, sigma: torch.Tensor, period: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(lifts d + P k ``[..., K]``, log N(lift; 0, sigma^2) ``[..., K]``) in float64."""
    d64, s64 = wrap(d.to(torch.float64), period), sigma.to(torch.float64)
    s64 = s64.expand_as(d64) if s64.ndim else s64.expand(d64.shape)
    n = _terms(s64, period)
    k = torch.arange(-n, n + 1, dtype=torch.float64, device=d.device)
    lift = d64[..., None] + period * k
    s = s64[..., None]
    logw = -0.5 * (lift / s) ** 2 - torch.log(s) - 0.5 * math.log(TWO_PI)
    return lift, logw


def wrapped_normal_log_prob(d: torch.Tensor, sigma: torch.Tensor | float, period: float = TWO_PI) -> torch.Tensor:
    """log p_sigma(d) of the wrapped normal with zero mean (per coordinate; float64 result).
    ``sigma`` broadcasts against ``d``."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=d.device)
    sigma = torch.broadcast_to(sigma, d.shape) if sigma.ndim else sigma
    _, logw = _images(d, sigma, period)
    return torch.logsumexp(logw, dim=-1)


def wrapped_normal_score(d: torch.Tensor, sigma: torch.Tensor | float, period: float = TWO_PI) -> torch.Tensor:
    """d/dd log p_sigma(d) of the wrapped normal (float64): the score of the torus kernel."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=d.device)
    sigma = torch.broadcast_to(sigma, d.shape) if sigma.ndim else sigma
    lift, logw = _images(d, sigma, period)
    w = torch.softmax(logw, dim=-1)
    return -(w * lift).sum(-1) / sigma.to(torch.float64) ** 2


def wrapped_eps(eps: torch.Tensor, sigma: torch.Tensor, period: float = TWO_PI) -> torch.Tensor:
    """The eps target on the torus: E[eps | sigma eps mod period] = -sigma grad log p_sigma
    (module docstring), in ``eps``'s dtype. ``sigma`` broadcasts against ``eps``; where sigma is
    small against the period the result is ``eps`` itself (to float precision)."""
    sigma = torch.broadcast_to(torch.as_tensor(sigma, device=eps.device).to(torch.float64), eps.shape)
    score = wrapped_normal_score(sigma * eps.to(torch.float64), sigma, period)
    return (-sigma * score).to(eps.dtype)
