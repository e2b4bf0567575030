"""DPM-Solver++(2M) SDE and DPM-Solver++(3M) SDE: the multistep data-prediction solvers of
Lu et al. (2022), "DPM-Solver++", applied to the reverse SDE instead of the ODE (their
"SDE-DPM-Solver++", sec. 5 and app. B; diffusers' algorithm_type="sde-dpmsolver++",
k-diffusion's sample_dpmpp_2m_sde / sample_dpmpp_3m_sde, whose ``eta`` scales the noise).

With lambda = log(alpha / sigma), h = lambda_s - lambda_t and the noise fraction eta (1: the
reverse SDE; 0: the probability-flow ODE, i.e. "dpm-solver++" / "dpm-solver++3m"), the data-
prediction SDE integrates exactly to

    x_s = (sigma_s / sigma_t) e^{-eta h} x_t + alpha_s int (1 + eta) e^{-(1 + eta)(lambda_s - l)} x0_hat(l) dl
          + sigma_s sqrt(1 - e^{-2 eta h}) z,

and x0_hat is expanded as in the ODE solvers, with h_eta = (1 + eta) h in the phi functions:

    phi1 = 1 - e^{-h_eta},  phi2 = 1 - phi1 / h_eta,  phi3 = phi2 / h_eta - 1/2
    2M (midpoint, diffusers' and k-diffusion's default):  + alpha_s phi1 D1_0 / 2
    3M: + alpha_s phi2 D1 - alpha_s phi3 D2  (D1_0, D1, D2: the divided differences of
        :mod:`.dpm_solver_3m`); its second step uses + alpha_s phi2 D1_0, as k-diffusion.

The 3M update is k-diffusion's. diffusers' third-order "sde-dpmsolver++" step has
-alpha_s (X + 1/2) D2 where the expansion gives -alpha_s (X - 1/2) D2, X = (e^{-2h} - 1 + 2h) /
(2h)^2 (its coefficient does not vanish as h -> 0): 2.0 apart at 20 steps on the mixture
target; with that sign fixed and solver_type="heun" diffusers is ours step for step
(tests/math/test_dpm_solver_sde.py). The first step is first order; the step to sigma = 0 returns x0_hat.

``noise_type="brownian"`` (default) takes z from one seeded Brownian path (:mod:`.brownian`), so
that the same seed on a finer grid refines the same path; ``noise_type="iid"`` draws fresh
normals each step, as diffusers does. (Not named ``noise``: that is ``generate``'s start noise.)
"""

from __future__ import annotations

import math

from .brownian import brownian_noise
from .dpm_solver import half_log_snr
from .table import Option, noise_source, sampler


def _options():
    return {
        "eta": Option(1.0, float, ge=0.0, le=10.0, description="noise fraction: 1 the reverse SDE, 0 the probability-flow ODE"),
        "noise_type": Option("brownian", str, choices=("brownian", "iid"),
                        description="brownian: one seeded Brownian path (the same whatever the grid for plain normal noise; through a domain's noise function, as `diffcore sample` runs it, reproducible per seed and grid); iid: fresh normals each step"),
    }


def _noise(like, kind, eta, generator, noise_fn):
    """z(lam_t, lam_s): standard normal noise for the step, from the Brownian tree or i.i.d."""
    if kind == "brownian":
        return brownian_noise(like, eta, generator=generator, noise_fn=noise_fn)
    draw = noise_source(noise_fn, generator)
    return lambda lam_t, lam_s: draw(like)


def sde_steps(den, x, ts, order, *, generator=None, callback=None, noise_fn=None, eta=1.0, noise_type="brownian"):
    """DPM-Solver++ SDE of multistep order ``order`` (2 or 3) along ``ts``."""
    n = len(ts) - 1
    hist: list = []  # (lambda, x0_hat) at the last (up to) three model times
    z = None
    for i, (t, s) in enumerate(zip(ts, ts[1:])):
        a_t, s_t = den.coef(t)
        x0, _ = den(x, t)
        a_s, s_s = den.coef(s)
        lam_t = math.log(a_t / s_t)
        hist = (hist + [(lam_t, x0)])[-3:]
        if s_s == 0:  # the step to sigma = 0 ("lower order final"): x0_hat
            x = x0
        else:
            lam_s = half_log_snr(a_s, s_s)  # as the next step's lam_t, bit for bit: the tree reuses W there
            h = lam_s - lam_t
            h_eta = (1.0 + eta) * h
            phi1 = -math.expm1(-h_eta)
            x = (s_s / s_t * math.exp(-eta * h)) * x + (a_s * phi1) * x0
            if len(hist) >= 2:
                r0 = (lam_t - hist[-2][0]) / h
                d1_0 = (x0 - hist[-2][1]) / r0
                phi2 = 1.0 - phi1 / h_eta
                if order == 2:
                    x = x + (0.5 * a_s * phi1) * d1_0
                elif len(hist) == 2:
                    x = x + (a_s * phi2) * d1_0
                else:
                    r1 = (hist[-2][0] - hist[-3][0]) / h
                    d1_1 = (hist[-2][1] - hist[-3][1]) / r1
                    d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
                    d2 = (1.0 / (r0 + r1)) * (d1_0 - d1_1)
                    phi3 = phi2 / h_eta - 0.5
                    x = x + (a_s * phi2) * d1 - (a_s * phi3) * d2
            if eta > 0:
                z = z or _noise(x, noise_type, eta, generator, noise_fn)
                x = x + (s_s * math.sqrt(-math.expm1(-2.0 * eta * h))) * z(lam_t, lam_s)
        if callback is not None:
            callback(i, n, x, x0)
    return x


@sampler("dpm-solver++2m-sde", order=2, evals="N", nfe=lambda n, o: n, default_spacing="logsnr", stochastic=True,
         options=_options(), reference="Lu et al. 2022, DPM-Solver++, SDE-DPM-Solver++(2M) (midpoint, as diffusers/k-diffusion)")
def sample_dpm_solver_pp_2m_sde(den, x, ts, *, generator=None, callback=None, noise_fn=None, eta=1.0, noise_type="brownian"):
    """DPM-Solver++(2M) SDE, Lu et al. (2022): second-order multistep on the reverse SDE."""
    return sde_steps(den, x, ts, 2, generator=generator, callback=callback, noise_fn=noise_fn, eta=eta, noise_type=noise_type)


@sampler("dpm-solver++3m-sde", order=3, evals="N", nfe=lambda n, o: n, default_spacing="logsnr", stochastic=True,
         options=_options(), reference="Lu et al. 2022, DPM-Solver++, third-order multistep on the SDE (k-diffusion's 3M SDE)")
def sample_dpm_solver_pp_3m_sde(den, x, ts, *, generator=None, callback=None, noise_fn=None, eta=1.0, noise_type="brownian"):
    """DPM-Solver++(3M) SDE (k-diffusion's sample_dpmpp_3m_sde): third-order multistep on the reverse SDE."""
    return sde_steps(den, x, ts, 3, generator=generator, callback=callback, noise_fn=noise_fn, eta=eta, noise_type=noise_type)
