"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2).

Each step draws x_s ~ q(x_s | x_t, x0_hat), the Gaussian posterior of the forward process
given the model's x0 (Ho et al. 2020, eq. 6-7; between any two times of a Gaussian path,
Kingma et al. 2021, appendix A):
    alpha_{t|s} = alpha_t / alpha_s,   sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2
    mean = alpha_{t|s} sigma_s^2 / sigma_t^2 x_t + alpha_s sigma_{t|s}^2 / sigma_t^2 x0_hat
    var  = sigma_{t|s}^2 sigma_s^2 / sigma_t^2
With every step of a discrete schedule this is the paper's sampler (variance beta-tilde);
with fewer steps it is DDIM with eta = 1. The last step (to sigma = 0) returns x0_hat.
"""

from __future__ import annotations

import math

from .base import noise_source, register


def posterior_coefficients(a_t: float, s_t: float, a_s: float, s_s: float) -> tuple[float, float, float]:
    """(c_x, c_x0, std) with mean = c_x x_t + c_x0 x0_hat; checks the path is a diffusion."""
    a_ts = a_t / a_s
    var_ts = s_t**2 - a_ts**2 * s_s**2
    if var_ts < -1e-12 * max(s_t**2, 1e-30):
        raise ValueError(
            "this schedule's signal-to-noise ratio does not decrease between two sampling times, "
            "so q(x_s | x_t, x_0) does not exist; use a deterministic sampler ('euler', 'heun', 'dpm-solver++')"
        )
    var_ts = max(var_ts, 0.0)
    return a_ts * s_s**2 / s_t**2, a_s * var_ts / s_t**2, math.sqrt(var_ts * s_s**2) / s_t


@register("ddpm")
def sample_ddpm(den, x, ts, *, generator=None, callback=None, noise_fn=None):
    """Ancestral sampling from the DDPM posterior (Ho et al. 2020, Algorithm 2)."""
    noise = noise_source(noise_fn, generator)
    n = len(ts)
    for i, t in enumerate(ts):
        x0, _ = den(x, t)
        s = ts[i + 1] if i + 1 < n else None
        if s is None:
            x = x0
        else:
            c_x, c_x0, std = posterior_coefficients(*den.coef(t), *den.coef(s))
            x = c_x * x + c_x0 * x0 + std * noise(x)
        if callback is not None:
            callback(i, n, x, x0)
    return x
