"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a multistep 2nd-order
solver of the probability-flow ODE in data prediction and lambda = log(alpha / sigma):

    h = lambda_s - lambda_t,   r = h_prev / h
    D = (1 + 1/(2r)) x0_hat_t - 1/(2r) x0_hat_prev        (D = x0_hat_t on the first step)
    x_s = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D

The last step, to sigma = 0 (lambda = +inf), is first order: it returns x0_hat ("lower order
final", which the paper recommends and which keeps cosine's near-zero final alpha stable).
"""

from __future__ import annotations

import math

from .base import register


@register("dpm-solver++")
def sample_dpm_solver_pp(den, x, ts, *, generator=None, callback=None, noise_fn=None):
    """DPM-Solver++(2M), Lu et al. (2022), Algorithm 2."""
    n = len(ts)
    x0_prev, h_prev = None, None
    for i, t in enumerate(ts):
        a_t, s_t = den.coef(t)
        x0, _ = den(x, t)
        s = ts[i + 1] if i + 1 < n else None
        if s is None:
            x = x0
        else:
            a_s, s_s = den.coef(s)
            h = math.log(a_s / s_s) - math.log(a_t / s_t)
            d = x0
            if x0_prev is not None:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
            x = (s_s / s_t) * x - a_s * math.expm1(-h) * d
            x0_prev, h_prev = x0, h
        if callback is not None:
            callback(i, n, x, x0)
    return x


# Steps evenly spaced in log-SNR, as Lu et al. (2022) recommend for this solver.
sample_dpm_solver_pp.default_spacing = "logsnr"
