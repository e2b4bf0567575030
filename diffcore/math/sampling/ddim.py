"""DDIM (Song, Meng & Ermon 2021): sampling, deterministic inversion.

Step from t to s < t (eq. 12 of the paper, written for any Gaussian path):
    x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z,
    c = eta * sqrt(q-posterior variance) = eta sigma_s / sigma_t sqrt(sigma_t^2 - (alpha_t/alpha_s)^2 sigma_s^2)
eta = 0 is deterministic (the probability-flow ODE's Euler step in (x / alpha, sigma / alpha),
Karras et al. 2022, sec. 4); eta = 1 is DDPM's ancestral sampler. Any N of the T steps of a
discrete schedule can be used (see :func:`diffcore.sampling.timesteps` for the spacings).
"""

from __future__ import annotations

import math

import torch

from .base import Denoiser, noise_source, prior_scale, register, timesteps
from .ddpm import posterior_coefficients
from .. import schedules as _schedules


@register("ddim")
def sample_ddim(den, x, ts, *, generator=None, callback=None, noise_fn=None, eta: float = 0.0):
    """DDIM (Song et al. 2021, eq. 12); ``eta`` in [0, 1] interpolates to DDPM."""
    if not 0.0 <= eta:
        raise ValueError("eta must be >= 0")
    noise = noise_source(noise_fn, generator)
    n = len(ts)
    for i, t in enumerate(ts):
        x0, eps = den(x, t)
        s = ts[i + 1] if i + 1 < n else None
        if s is None:
            x = x0
        else:
            a_s, s_s = den.coef(s)
            c = eta * posterior_coefficients(*den.coef(t), a_s, s_s)[2] if eta > 0 else 0.0
            x = a_s * x0 + math.sqrt(max(s_s**2 - c**2, 0.0)) * eps
            if c > 0:
                x = x + c * noise(x)
        if callback is not None:
            callback(i, n, x, x0)
    return x


def ddim_invert(
    model,
    x0: torch.Tensor,
    schedule,
    *,
    steps: int = 50,
    prediction: str = "eps",
    spacing: str | None = None,
    refine: int = 2,
) -> torch.Tensor:
    """Deterministic DDIM inversion x0 -> noise (Song et al. 2021, sec. 4.3 / 5.4): run the
    eta = 0 update backwards, from the clean end up to the first sampling time, so that
    ``generate(model, ddim_invert(model, x0, ...), ..., sampler="ddim")`` returns x0.

    Each step solves x_q from x_p = DDIM(x_q; q -> p) by ``refine`` fixed-point iterations
    (refine = 0 is the usual approximation that evaluates the model at the lower time). The
    result is standard-normal-scaled noise, like the ``noise`` argument of ``generate``.
    """
    schedule = _schedules.get(schedule)
    ts = timesteps(schedule, steps, spacing)[::-1]  # ascending
    den = Denoiser(model, schedule, prediction)
    x = x0
    prev = None  # clean end
    with torch.no_grad():
        for q in ts:
            a_p, s_p = den.coef(prev)
            a_q, s_q = den.coef(q)
            # x_p = (a_p/a_q) x_q + (s_p - a_p s_q / a_q) eps(x_q)  =>  x_q = (a_q/a_p)(x_p - k eps)
            k = s_p - a_p * s_q / a_q
            _, eps = den(x, prev if prev is not None else q)
            x_q = (a_q / a_p) * (x - k * eps)
            for _ in range(refine):
                _, eps = den(x_q, q)
                x_q = (a_q / a_p) * (x - k * eps)
            x, prev = x_q, q
    return x / prior_scale(den, ts[-1])
