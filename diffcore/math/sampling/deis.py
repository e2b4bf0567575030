"""DEIS, the multistep exponential integrator of Zhang & Chen (2023), "Fast Sampling of
Diffusion Models with Exponential Integrator" (ICLR), in the form diffusers implements
(``DEISMultistepScheduler(algorithm_type="deis", solver_type="logrho")``).

In y = x / alpha and rho = sigma / alpha the probability-flow ODE is dy / drho = eps_hat
(:mod:`.ode`; DEIS's "time scaling", where the exponential integrator has absorbed the linear
part), so a step from model time t to s is exactly
    y_s = y_t + int_{rho_t}^{rho_s} eps_hat(rho) d rho.
DEIS replaces eps_hat by the polynomial through the last k noise predictions eps_0 (at t),
eps_1, ..., eps_{k-1} (earlier), and integrates that polynomial exactly: an Adams-Bashforth
method whose weights are integrals of the Lagrange basis against the exact kernel (the
paper's C_ij of AB-DEIS). As in diffusers, the polynomial is taken in u = log rho
(= -lambda, the half log-SNR with its sign changed): with v = log(rho / rho_t),
h = log(rho_s / rho_t) < 0 and the earlier nodes v_j = log(rho_j / rho_t) > 0,
    y_s = y_t + rho_t sum_j w_j eps_j,   w_j = int_0^h e^v L_j(v) dv,
    L_j(v) = prod_{i != j} (v - v_i) / (v_j - v_i),
    x_s = alpha_s y_s.
For k = 1 this is DDIM (x_s = alpha_s x0_hat + sigma_s eps_hat); for k = 2, 3 the weights
are diffusers' ``coef1, coef2, coef3`` of ``multistep_deis_second_order_update`` /
``multistep_deis_third_order_update`` (their ``ind_fn`` is the antiderivative of rho L_j in
closed form; here the moments int_0^h e^v v^m dv are summed as series for small |h|, so
there is no cancellation). The interpolation variable is log rho, not the model time t of
the paper's tAB-DEIS: on a VP path that is DPM-Solver's lambda, where eps_hat is smoothest;
tests/math/test_deis_ipndm.py checks the update against diffusers step for step.

Warm-up and end: step i uses k = min(order, i + 1) predictions (diffusers' lower_order_nums).
The step to sigma = 0 is first order and lands exactly on x0_hat ("lower order final", as
every sampler here). Diffusers also lowers the last two steps of its own grid below 15 steps
(its grid ends at the first training step, not at sigma = 0); here every step before the
jump to sigma = 0 keeps the full order, as in :mod:`.dpm_solver_3m` (diffusers' rule, tried
on the target below, changed the distance little and not one way: 0.031 / 0.0022 / 0.0014
against 0.025 / 0.0027 / 0.0014 on "linear" at 5 / 8 / 10 steps).

Default spacing: "logsnr" (equal h per step; Lu et al.'s choice for DPM-Solver, of which
this is the noise-prediction, exactly-weighted multistep relative). Energy distance to
``GaussianMixture.default()`` (diffcore.testing; N = 2000, exact denoiser, mean of 8 seeds;
the largest of 20 null distances is 0.0044) at 5 / 8 / 10 steps:
    linear:  linspace 0.057 / 0.097 / 0.028   trailing 0.055 / 0.010 / 0.0086   logsnr 0.025 / 0.0027 / 0.0014
    cosine:  linspace 0.078 / 0.025 / 0.0099  trailing 0.0092 / 0.0071 / 0.0045 logsnr 0.028 / 0.0031 / 0.0016
"linspace" ends with one long step in log rho (t = 0.144 -> 0.001 at 8 steps on "linear"),
the worst place for a quadratic extrapolation; "trailing" is better only at 5 steps on
cosine. Order 2 on "logsnr" is about twice as far (0.0053 / 0.0026 at 8 / 10 on "linear").
"""

from __future__ import annotations

import math

from .table import Option, sampler

MAX_ORDER = 3


def exp_moments(h: float, k: int) -> list[float]:
    """I_m = int_0^h e^v v^m dv for m = 0..k-1. The recursion I_m = h^m e^h - m I_{m-1}
    cancels for small |h| (I_m ~ h^(m+1) / (m+1)); there the series
    sum_n h^(m+n+1) / (n! (m+n+1)) is used."""
    if abs(h) < 0.5:
        out = []
        for m in range(k):
            term, total, n = h ** (m + 1), 0.0, 0  # term = h^(m+n+1) / n!
            while True:
                add = term / (m + n + 1)
                total += add
                if abs(add) <= 1e-17 * abs(total):
                    break
                n += 1
                term *= h / n
            out.append(total)
        return out
    out = [math.expm1(h)]
    e = math.exp(h)
    for m in range(1, k):
        out.append(h ** m * e - m * out[-1])
    return out


def lagrange_weights(nodes: list[float], moments: list[float]) -> list[float]:
    """w_j = sum_m a_jm I_m where L_j(v) = sum_m a_jm v^m is the Lagrange basis polynomial of
    ``nodes`` (1 at nodes[j], 0 at the others) and I_m = int v^m (kernel) dv are the kernel's
    moments over the step: the weights of an Adams-Bashforth step with any kernel."""
    k = len(nodes)
    weights = []
    for j in range(k):
        coeffs, denom = [1.0], 1.0  # coefficients of prod_{i != j} (v - v_i), lowest power first
        for i in range(k):
            if i == j:
                continue
            coeffs = [(coeffs[m - 1] if m > 0 else 0.0) - (coeffs[m] * nodes[i] if m < len(coeffs) else 0.0)
                      for m in range(len(coeffs) + 1)]
            denom *= nodes[j] - nodes[i]
        weights.append(sum(c * moments[m] for m, c in enumerate(coeffs)) / denom)
    return weights


@sampler("deis", order=MAX_ORDER, evals="N", nfe=lambda n, o: n, default_spacing="logsnr",
         options={"order": Option(MAX_ORDER, int, ge=1, le=MAX_ORDER,
                                  description="number of noise predictions the polynomial goes through "
                                              "(1: DDIM; 3: diffusers' solver_order=3)")},
         reference="Zhang & Chen 2023, DEIS, multistep exponential integrator (AB-DEIS), log-rho form as diffusers' "
                   "DEISMultistepScheduler")
def sample_deis(den, x, ts, *, generator=None, callback=None, noise_fn=None, order: int = MAX_ORDER):
    """DEIS (Zhang & Chen 2023): multistep exponential integrator of the probability-flow ODE,
    noise prediction extrapolated in log(sigma / alpha), as diffusers' DEISMultistepScheduler."""
    n = len(ts) - 1
    hist: list = []  # (log rho, eps_hat) at the last (up to) `order` model times, oldest first
    for i, (t, s) in enumerate(zip(ts, ts[1:])):
        a_t, s_t = den.coef(t)
        x0, eps = den(x, t)
        a_s, s_s = den.coef(s)
        rho_t = s_t / a_t
        u_t = math.log(rho_t)
        hist = (hist + [(u_t, eps)])[-order:]
        if s_s == 0 or len(hist) == 1:
            x = a_s * x0 + s_s * eps  # DDIM, the first-order step; x0_hat itself on the step to sigma = 0
        else:
            rho_s = s_s / a_s
            h = math.log(rho_s / rho_t)
            nodes = [u - u_t for u, _ in reversed(hist)]  # 0 at t, then the earlier (noisier) times
            w = lagrange_weights(nodes, exp_moments(h, len(nodes)))
            d = w[0] * eps
            for wj, (_, e) in zip(w[1:], reversed(hist[:-1])):
                d = d + wj * e
            x = (a_s / a_t) * x + (a_s * rho_t) * d
        if callback is not None:
            callback(i, n, x, x0)
    return x
