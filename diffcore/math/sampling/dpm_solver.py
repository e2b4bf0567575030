"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a multistep 2nd-order
solver of the probability-flow ODE in data prediction and lambda = log(alpha / sigma):

    h = lambda_s - lambda_t,   r = h_prev / h
    D = (1 + 1/(2r)) x0_hat_t - 1/(2r) x0_hat_prev        (D = x0_hat_t on the first step)
    x_s = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D

The last step, to sigma = 0 (lambda = +inf, h = inf), is first order, where the update is
exactly x0_hat ("lower order final", which the paper recommends and which keeps cosine's
near-zero final alpha stable).
"""

from __future__ import annotations

import math

from .table import sampler


def half_log_snr(a: float, s: float) -> float:
    """lambda = log(alpha / sigma); +inf at the clean end (sigma = 0)."""
    return math.log(a / s) if s > 0 else math.inf


@sampler("dpm-solver++", order=2, evals="N", nfe=lambda n, o: n, default_spacing="logsnr",  # Lu et al.'s spacing
         reference="Lu et al. 2022, DPM-Solver++, Algorithm 2")
def sample_dpm_solver_pp(den, x, ts, *, generator=None, callback=None, noise_fn=None):
    """DPM-Solver++(2M), Lu et al. (2022), Algorithm 2."""
    n = len(ts) - 1
    x0_prev, h_prev = None, None
    for i, (t, s) in enumerate(zip(ts, ts[1:])):
        a_t, s_t = den.coef(t)
        x0, _ = den(x, t)
        a_s, s_s = den.coef(s)
        h = half_log_snr(a_s, s_s) - half_log_snr(a_t, s_t)
        d = x0
        if x0_prev is not None and s_s > 0:  # first order on the step to sigma = 0 ("lower order final")
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        x = (s_s / s_t) * x - a_s * math.expm1(-h) * d
        x0_prev, h_prev = x0, h
        if callback is not None:
            callback(i, n, x, x0)
    return x
