"""UniPC (Zhao, Bai, Rao, Zhou & Lu 2023, "UniPC: A Unified Predictor-Corrector Framework for
Fast Sampling of Diffusion Models", NeurIPS): the multistep predictor UniP-p and the corrector
UniC-p, combined as UniPC-p, in data prediction, with the B(h) coefficients ("bh1", "bh2"), as
the authors' code (wl-zhao/UniPC ``uni_pc.py``, ``multistep_uni_pc_bh_update``) and diffusers'
``UniPCMultistepScheduler(predict_x0=True)`` implement them; tests/math/test_unipc.py checks
the latter step for step.

A step from the model time t to s (noisiest first), lambda = log(alpha / sigma),
h = lambda_s - lambda_t. m_0 = x0_hat at t; m_1, ..., m_(p-1) the outputs at the p - 1 model
times before, at lambda_(t_k); r_k = (lambda_(t_k) - lambda_t) / h (< 0), D_k = (m_k - m_0) / r_k.
Data prediction integrates in -lambda: with hh = -h,
    phi_1(z) = (e^z - 1) / z,   phi_(k+1)(z) = (phi_k(z) - 1 / k!) / z,
    g_i = i! hh phi_(i+1)(hh) / B,   B = hh ("bh1", the paper's B(h) = h)
                                     or e^hh - 1 ("bh2", B(h) = e^h - 1).

UniP-p, the predictor (an explicit p-th order step from x_t):
    x_s = (sigma_s / sigma_t) x_t - alpha_s (e^-h - 1) m_0 - alpha_s B sum_(k<p) a_k D_k,
    sum_k a_k r_k^(i-1) = g_i, i = 1..p-1;   a_1 = 1/2 when p = 2
(the authors' code's and diffusers' simplification; with "bh2", UniP-2 is then exactly
DPM-Solver++(2M), :mod:`.dpm_solver`).

UniC-p, the corrector: the model is evaluated at the predicted x_s anyway, for the next step;
with that output m_s, the same step again:
    x_s^c = (sigma_s / sigma_t) x_t - alpha_s (e^-h - 1) m_0
            - alpha_s B [sum_(k<p) c_k D_k + c_p (m_s - m_0)],
    sum_k c_k r_k^(i-1) = g_i, i = 1..p, with r_p = 1;   c_1 = 1/2 when p = 1.
x_s^c replaces x_s as the start of the next step, and m_s (evaluated at the uncorrected
x_s) is kept as the model output at s: the corrector costs no evaluation, N model times cost N.
UniPC-p is of order p + 1 (UniC raises UniP-p's order by one; the table's order column is
that of the default ``order``). B enters only where a coefficient is fixed to 1/2 (UniP-2,
UniC-1): a solved one is proportional to 1 / B, so B a_k and B c_k do not depend on it, and
"bh1" and "bh2" take the same UniP-3, UniC-2 and UniC-3 steps.

Orders: step i (0-based) runs UniP-p_i with p_i = min(order, i + 1) (warm-up: the outputs
there are), then min(p_i, N - i) with ``lower_order_final`` (diffusers' default; it changes
order 3 only, whose last step between model times becomes UniP-2), and the step to the
clean end is first order with no corrector: it lands on x0_hat at the last model time.

What differs from diffusers (at the same model times the states agree to ~1e-6; diffusers
keeps its sigmas in float32, we compute the coefficients in float64):
  - the step to sigma = 0 (lambda = +inf): diffusers' "bh1" gives NaN there (B = hh = -inf
    times a zero residual), and with lower_order_final=False any order >= 2 divides by
    r_k = 0 there (inf, NaN or a singular solve). Here it is always first order, exactly
    x0_hat at the last model time (what diffusers' "bh2" returns);
  - no noise-prediction form (predict_x0=False), solver_p, disable_corrector or thresholding
    (``Denoiser(clip_x0=...)`` clips x0_hat instead);
  - the time grid is diffcore's (:mod:`.grid`); diffusers' 0-based step k is our step k + 1.

Defaults, from docs/benchmarks.md's Gaussian-mixture target (``GaussianMixture.default()``,
N = 2000, mean energy distance over 8 noise seeds; the null spread's max is 0.0044):
  - spacing "logsnr" (even in lambda, Lu et al. 2022's spacing for DPM-Solver): a multistep
    extrapolation wants steps of similar size in lambda. diffcore's "linspace" on the linear
    schedule ends with a jump of h = 3.6 after steps of h < 0.8, and at 10 steps "unipc" lands
    at 0.21 (linear) / 0.015 (cosine) there against 0.0041 / 0.0056 on "logsnr"; "trailing"
    stops at t = T / N, and its final jump to x0_hat leaves ~0.009 on linear at 10 steps
    whatever the sampler;
  - "unipc" ("bh2", diffusers' default): order 2, best of 1-3 at 5, 8 and 12 steps (0.017 /
    0.013 / 0.0019 on linear, 0.025 / 0.022 / 0.0022 on cosine; order 3: 0.071 / 0.036 / 0.0046
    and 0.13 / 0.061 / 0.0047); order 3 is ahead at 10 only (0.0036 / 0.0041 vs 0.0041 / 0.0056);
  - "unipc-bh1": order 1 (UniPC-1: a DDIM step and UniC-1, second order). At 10 steps it is
    within the null spread on both (0.0031 linear, 0.0038 cosine), the best UniPC there,
    which agrees with diffusers' advice of "bh1" for unconditional sampling below 10 steps;
    with order 2 it is 0.025 / 0.038: with B = hh the simplified a_1 = 1/2 makes UniP-2's
    correction grow like h / 2 where the exact coefficient stays bounded, and at h ~ 1.6
    (10 steps) to 3.7 (5 steps) that overshoots.
"""

from __future__ import annotations

import math

from .dpm_solver import half_log_snr
from .table import Option, sampler


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """x with a x = b, by Gaussian elimination with partial pivoting (a is at most 3 x 3)."""
    n = len(b)
    m = [list(row) + [v] for row, v in zip(a, b)]
    for c in range(n):
        piv = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[piv] = m[piv], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            for k in range(c, n + 1):
                m[r][k] -= f * m[c][k]
    x = [0.0] * n
    for r in reversed(range(n)):
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x


def _coefficients(h: float, rs: list[float], bh1: bool) -> tuple[float, list[float]]:
    """B and the coefficients c with sum_k c_k r_k^(i-1) = g_i, i = 1..len(rs) (the module
    docstring); the phi recursion as the authors' code and diffusers write it."""
    hh = -h
    b_h = hh if bh1 else math.expm1(hh)
    h_phi_k = math.expm1(hh) / hh - 1.0  # hh phi_2(hh)
    fact, g = 1.0, []
    for i in range(1, len(rs) + 1):
        g.append(h_phi_k * fact / b_h)
        fact *= i + 1
        h_phi_k = h_phi_k / hh - 1.0 / fact  # hh phi_(i+2)(hh)
    return b_h, _solve([[r ** i for r in rs] for i in range(len(rs))], g)


def _step(x, ratio, a_s, h, m0, terms, bh1, simplified):
    """ratio x - a_s (e^-h - 1) m0 - a_s B sum_k c_k (m_k - m0) / r_k over ``terms`` = [(r_k, m_k)]:
    UniP's terms are the earlier outputs, UniC's end with (1, m_s). ``simplified``: the one
    coefficient of UniP-2 and UniC-1 (1/2) instead of the solve."""
    x = ratio * x - (a_s * math.expm1(-h)) * m0  # first order (DDIM); exactly m0 when sigma_s = 0
    if terms:
        rs = [r for r, _ in terms]
        b_h, cs = (-h if bh1 else math.expm1(-h), [0.5]) if simplified else _coefficients(h, rs, bh1)
        for c, (r, m) in zip(cs, terms):
            x = x - (a_s * b_h * c / r) * (m - m0)
    return x


def _unipc(den, x, ts, callback, order: int, lower_order_final: bool, bh1: bool):
    n = len(ts) - 1
    hist: list = []  # (lambda, x0_hat) at the last (up to) `order` model times, most recent last
    start = None  # the last step: (x at its start, corrected; sigma and lambda there; its order p)
    for i, (t, s) in enumerate(zip(ts, ts[1:])):
        a_t, s_t = den.coef(t)
        lam_t = math.log(a_t / s_t)
        m, _ = den(x, t)
        if start is not None:  # UniC-p of the last step, with m: x at t corrected, no evaluation
            x_0, s_0, lam_0, p = start
            h = lam_t - lam_0
            terms = [((lam - lam_0) / h, mk) for lam, mk in reversed(hist[-p:-1])] + [(1.0, m)]
            x = _step(x_0, s_t / s_0, a_t, h, hist[-1][1], terms, bh1, simplified=p == 1)
        hist = (hist + [(lam_t, m)])[-order:]
        a_s, s_s = den.coef(s)
        h = half_log_snr(a_s, s_s) - lam_t
        p = min(order, len(hist), n - i if lower_order_final else order)
        if s_s == 0:
            p = 1  # to the clean end (h = inf): first order, lands on x0_hat; no corrector after it
        terms = [((lam - lam_t) / h, mk) for lam, mk in reversed(hist[-p:-1])]
        start = (x, s_t, lam_t, p)
        x = _step(x, s_s / s_t, a_s, h, m, terms, bh1, simplified=p == 2)  # UniP-p
        if callback is not None:
            callback(i, n, x, m)
    return x


def _options(order: int) -> dict[str, Option]:
    return {
        "order": Option(order, int, ge=1, le=3, description=(
            "p of UniPC-p: UniP-p predictor from the last p model outputs, UniC-p corrector; order of accuracy p + 1 "
            "(diffusers' solver_order)")),
        "lower_order_final": Option(True, bool, description=(
            "order 3 only: the last step between model times is UniP-2 (diffusers' lower_order_final); the step to "
            "the clean end is first order either way")),
    }


@sampler("unipc", order=3, evals="N", nfe=lambda n, o: n, default_spacing="logsnr", options=_options(2),
         reference="Zhao et al. 2023, UniPC: UniP-p + UniC-p, B(h) = e^h - 1 (diffusers' bh2), data prediction")
def sample_unipc(den, x, ts, *, generator=None, callback=None, noise_fn=None, order=2, lower_order_final=True):
    """UniPC-p with B(h) = e^h - 1, Zhao et al. (2023): multistep predictor-corrector in data prediction."""
    return _unipc(den, x, ts, callback, order, lower_order_final, bh1=False)


@sampler("unipc-bh1", order=2, evals="N", nfe=lambda n, o: n, default_spacing="logsnr", options=_options(1),
         reference="Zhao et al. 2023, UniPC: UniP-p + UniC-p, B(h) = h (diffusers' bh1), data prediction")
def sample_unipc_bh1(den, x, ts, *, generator=None, callback=None, noise_fn=None, order=1, lower_order_final=True):
    """UniPC-p with B(h) = h, Zhao et al. (2023): multistep predictor-corrector in data prediction."""
    return _unipc(den, x, ts, callback, order, lower_order_final, bh1=True)
