"""DPM-Solver++(2S), registered as the sampler ``dpm-solver++2s``.

Lu, Zhou, Bao, Chen, Li & Zhu (2022), "DPM-Solver++: Fast Solver for Guided Sampling of
Diffusion Probabilistic Models", Algorithm 1: a single-step, second-order solver of the
probability-flow ODE written for the data prediction x0_hat, in lambda = log(alpha / sigma).
From t to the next time s, with h = lambda_s - lambda_t and an intermediate time m at
lambda_m = lambda_t + r h (r = 1/2):

    u   = (sigma_m / sigma_t) x - alpha_m (e^{-r h} - 1) x0_hat(x, t)
    D   = (1 - 1 / (2 r)) x0_hat(x, t) + 1 / (2 r) x0_hat(u, m)
    x_s = (sigma_s / sigma_t) x - alpha_s (e^{-h} - 1) D

Two model evaluations per step; the last step goes to the clean data (sigma = 0) as every
diffcore sampler does: x = x0_hat at the last model time. The calling convention is
diffcore's (:mod:`diffcore.sampling`): ``denoiser(x, t) -> (x0_hat, eps_hat)`` whatever the
network predicts, ``denoiser.coef(t) -> (alpha, sigma)``, and ``ts`` the model times,
descending.
"""

from __future__ import annotations

import math

import torch


def _half_log_snr(den, t: float) -> float:
    a, s = den.coef(t)
    return math.log(a) - math.log(s)


def _time_at(den, lam: float, hi: float, lo: float) -> float:
    """The time in [lo, hi] where lambda = log(alpha / sigma) equals ``lam``: bisection on the
    schedule's log-SNR (which decreases in t), evaluated directly (no derivatives, no cache)."""
    log_snr = den.schedule.log_snr
    for _ in range(40):
        mid = 0.5 * (hi + lo)
        if 0.5 * float(log_snr(torch.tensor(mid, dtype=torch.float64))) > lam:
            lo = mid
        else:
            hi = mid
    return 0.5 * (hi + lo)


def sample_dpm_solver_2s(den, x, ts, *, generator=None, callback=None, noise_fn=None, r: float = 0.5):
    """DPM-Solver++(2S) (Lu et al. 2022, Algorithm 1); deterministic. ``r`` in (0, 1] places
    the intermediate evaluation at lambda_t + r h (1/2 in the paper)."""
    if not 0.0 < r <= 1.0:
        raise ValueError(f"r must be in (0, 1], got {r}")
    n = len(ts)
    for i, t in enumerate(ts):
        x0, _ = den(x, t)
        s = ts[i + 1] if i + 1 < n else None
        if s is None:
            x = x0  # the last step lands on the clean data
        else:
            a_t, s_t = den.coef(t)
            a_s, s_s = den.coef(s)
            lam_t, lam_s = _half_log_snr(den, t), _half_log_snr(den, s)
            h = lam_s - lam_t
            m = _time_at(den, lam_t + r * h, hi=t, lo=s)
            a_m, s_m = den.coef(m)
            h_m = _half_log_snr(den, m) - lam_t  # = r h up to the bisection's tolerance
            u = (s_m / s_t) * x - a_m * math.expm1(-h_m) * x0
            x0_m, _ = den(u, m)
            rr = h_m / h
            d = (1.0 - 1.0 / (2.0 * rr)) * x0 + (1.0 / (2.0 * rr)) * x0_m
            x = (s_s / s_t) * x - a_s * math.expm1(-h) * d
            x0 = d
        if callback is not None:
            callback(i, n, x, x0)
    return x



# Times evenly spaced in log-SNR, as the DPM-Solver papers recommend (`generate` uses a
# sampler's ``default_spacing`` unless the caller asks for another).
sample_dpm_solver_2s.default_spacing = "logsnr"
