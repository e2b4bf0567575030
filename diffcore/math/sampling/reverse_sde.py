"""Reverse-time SDE samplers (Song et al. 2021).

The reverse SDE of a Gaussian path (Anderson 1982; Song et al. 2021, eq. 6):
    dx = [f(t) x - g(t)^2 score(x, t)] dt + g(t) dw_bar,
    f = d log(alpha)/dt,  g^2 = d(sigma^2)/dt - 2 f sigma^2            (see diffcore.sde)

``euler-maruyama``: the Euler-Maruyama discretisation of that SDE (Song et al. 2021,
appendix D / ``EulerMaruyamaPredictor``).
``pc``: predictor-corrector sampling (Song et al. 2021, Algorithms 2-3): at each time a
Langevin corrector with step size set by a signal-to-noise ratio ``snr`` (Algorithm 4/5),
then the reverse-diffusion predictor, which discretises the SDE with the forward chain's own
transition x_t = a x_s + b z (a = alpha_t / alpha_s, b^2 = sigma_t^2 - a^2 sigma_s^2):
    x_s = (2 - a) x_t + b^2 score + b z
(for VE: x + (sigma_t^2 - sigma_s^2) score + ...; for VP: (2 - sqrt(1 - beta)) x + beta score + ...,
the paper's eq. 46-47). Both end with the denoising step to sigma = 0 (x0_hat).
"""

from __future__ import annotations

import math

import torch

from .grid import CLEAN
from .table import Option, noise_source, sampler


def _mean_norm(v: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the per-example norms (score_sde's LangevinCorrector)."""
    return v.flatten(1).norm(dim=1).mean()


@sampler("euler-maruyama", order=1, evals="N", nfe=lambda n, o: n, stochastic=True, min_steps=15, check_steps=100,
         reference="Song et al. 2021, eq. 6 (EulerMaruyamaPredictor), with the final denoising step")
def sample_euler_maruyama(den, x, ts, *, generator=None, callback=None, noise_fn=None):
    """Euler-Maruyama on the reverse-time SDE (Song et al. 2021, eq. 6)."""
    noise = noise_source(noise_fn, generator)
    n = len(ts) - 1
    for i, (t, s) in enumerate(zip(ts, ts[1:])):
        score, x0 = den.score(x, t)
        if s is CLEAN:
            x = x0  # the method's last move: the denoising step to sigma = 0 (Tweedie)
        else:
            f, g2 = den.sde(t)
            g2 = max(g2, 0.0)
            dt = s - t  # negative
            x = x + (f * x - g2 * score) * dt + math.sqrt(g2 * -dt) * noise(x)
        if callback is not None:
            callback(i, n, x, x0)
    return x


def langevin_step(den, x, t, noise, snr: float, alpha_scale: float = 1.0):
    """One corrector step of Langevin MCMC with the step size of Song et al. (2021),
    Algorithm 5: eps = 2 alpha (snr ||z|| / ||score||)^2, x += eps score + sqrt(2 eps) z.
    The norms are batch means of per-example norms, as in the paper's code: one step size
    per batch keeps the chain unbiased across examples."""
    score, _ = den.score(x, t)
    z = noise(x)
    step = float(2 * alpha_scale * (snr * _mean_norm(z) / _mean_norm(score).clamp(min=1e-12)) ** 2)
    return x + step * score + math.sqrt(2 * step) * z


@sampler(
    "pc", order=1, evals="N (1 + corrector_steps)", nfe=lambda n, o: n * (1 + o["corrector_steps"]), stochastic=True,
    min_steps=8, check_steps=100,  # at 50 steps its error on the kit's target is ~2x the kit's threshold
    reference="Song et al. 2021, Algorithms 2-3 and 5 (reverse-diffusion predictor, Langevin corrector)",
    options={
        "snr": Option(0.16, float, gt=0.0, description="signal-to-noise ratio that sets the corrector's step size"),
        "corrector_steps": Option(1, int, ge=0, description="Langevin corrector steps before each predictor step"),
    },
)
def sample_pc(den, x, ts, *, generator=None, callback=None, noise_fn=None, snr: float = 0.16, corrector_steps: int = 1):
    """Predictor-corrector sampling: Langevin corrector + reverse-diffusion predictor
    (Song et al. 2021, Algorithms 2-3). ``snr`` sets the corrector's step size."""
    noise = noise_source(noise_fn, generator)
    n = len(ts) - 1
    for i, (t, s) in enumerate(zip(ts, ts[1:])):
        a_t, s_t = den.coef(t)
        a_s, s_s = den.coef(s)
        a = a_t / a_s
        for _ in range(corrector_steps):
            x = langevin_step(den, x, t, noise, snr, alpha_scale=a**2 if s is not CLEAN else 1.0)
        score, x0 = den.score(x, t)
        if s is CLEAN:
            x = x0  # the method's last move: the denoising step to sigma = 0 (Tweedie)
        else:
            b2 = max(s_t**2 - a**2 * s_s**2, 0.0)
            x = (2 - a) * x + b2 * score + math.sqrt(b2) * noise(x)
        if callback is not None:
            callback(i, n, x, x0)
    return x
