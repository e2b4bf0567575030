"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2).

Each step draws x_s ~ q(x_s | x_t, x0_hat), the Gaussian posterior of the forward process
given the model's x0 (Ho et al. 2020, eq. 6-7; between any two times of a Gaussian path,
Kingma et al. 2021, appendix A):
    alpha_{t|s} = alpha_t / alpha_s,   sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2
    mean = alpha_{t|s} sigma_s^2 / sigma_t^2 x_t + alpha_s sigma_{t|s}^2 / sigma_t^2 x0_hat
    var  = sigma_{t|s}^2 sigma_s^2 / sigma_t^2
With every step of a discrete schedule this is the paper's sampler (variance beta-tilde);
with fewer steps it is DDIM with eta = 1. On the last step, to the clean end (sigma_s = 0), the
posterior is x0_hat itself.
"""

from __future__ import annotations

from ..forward import posterior_coefficients
from .table import noise_source, sampler


@sampler("ddpm", order=1, evals="N", nfe=lambda n, o: n, stochastic=True,
         reference="Ho et al. 2020, Algorithm 2; the posterior of eq. 6-7 between any two times")
def sample_ddpm(den, x, ts, *, generator=None, callback=None, noise_fn=None):
    """Ancestral sampling from the DDPM posterior (Ho et al. 2020, Algorithm 2)."""
    noise = noise_source(noise_fn, generator)
    n = len(ts) - 1
    for i, (t, s) in enumerate(zip(ts, ts[1:])):
        x0, _ = den(x, t)
        c_x, c_x0, std = posterior_coefficients(*den.coef(t), *den.coef(s))
        x = c_x * x + c_x0 * x0
        if std > 0:  # zero on the step to the clean end, where the posterior is x0_hat itself
            x = x + std * noise(x)
        if callback is not None:
            callback(i, n, x, x0)
    return x
