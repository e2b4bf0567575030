"""Probability-flow ODE solvers: Euler and Heun (Karras et al. 2022, Algorithm 1).

The probability-flow ODE of a Gaussian path (Song et al. 2021, eq. 13),
    dx/dt = f(t) x - 1/2 g(t)^2 score(x, t) = alpha'(t) x0_hat + sigma'(t) eps_hat,
becomes, in y = x / alpha and tau = sigma / alpha (Karras et al. 2022, eq. 4 with s = alpha),
    dy / dtau = eps_hat(x, t),
which is nearly linear and is what the steps below integrate. Euler in this form is exactly
DDIM with eta = 0, and on the "flow" schedule (alpha = 1 - t, sigma = t) it is the
flow-matching / rectified-flow Euler step x_s = x_t + (s - t) v. Heun adds a second
evaluation at the end of each step (EDM's 2nd-order correction), except the final step to
sigma = 0, which is an Euler step (as in EDM). That final Euler step, dtau = -sigma_t / alpha_t,
lands on x0_hat (up to rounding). Where noise dominates (sigma > alpha) the
correction is taken in the equivalent form z = x / sigma, rho = alpha / sigma,
dz / drho = x0_hat (the same ODE, whose Euler step is the same DDIM step), where a step stays
short even next to a schedule end with alpha ~ 0.
"""

from __future__ import annotations

from .table import sampler


@sampler("euler", order=1, evals="N", nfe=lambda n, o: n, reference="Karras et al. 2022, Algorithm 1 without the 2nd-order correction")
def sample_euler(den, x, ts, *, generator=None, callback=None, noise_fn=None):
    """Euler steps of the probability-flow ODE (Karras et al. 2022, Algorithm 1 without the
    2nd-order correction)."""
    return _solve(den, x, ts, callback, heun=False)


@sampler("heun", order=2, evals="2N - 1", nfe=lambda n, o: 2 * n - 1, reference="Karras et al. 2022, Algorithm 1")
def sample_heun(den, x, ts, *, generator=None, callback=None, noise_fn=None):
    """Heun's 2nd-order method on the probability-flow ODE (Karras et al. 2022, Algorithm 1)."""
    return _solve(den, x, ts, callback, heun=True)


def _solve(den, x, ts, callback, *, heun: bool):
    n = len(ts) - 1
    for i, (t, s) in enumerate(zip(ts, ts[1:])):
        a_t, s_t = den.coef(t)
        x0, eps = den(x, t)
        a_s, s_s = den.coef(s)
        dtau = s_s / a_s - s_t / a_t
        y = x / a_t
        x_next = a_s * (y + dtau * eps)
        if heun and s_s > 0:  # no correction on the step to sigma = 0 (EDM, Algorithm 1, line 8)
            x0_2, eps2 = den(x_next, s)
            if s_t > a_t:
                # Noise-dominated end: the same ODE in z = x / sigma, rho = alpha / sigma
                # (dz/drho = x0_hat) keeps the trapezoid's step short; in tau the first step
                # off cosine's alpha(1) ~ 5e-5 spans tau ~ 2e4 and amplifies eps's change.
                drho = a_s / s_s - a_t / s_t
                x_next = s_s * (x / s_t + drho * 0.5 * (x0 + x0_2))
            else:
                x_next = a_s * (y + dtau * 0.5 * (eps + eps2))
        x = x_next
        if callback is not None:
            callback(i, n, x, x0)
    return x
