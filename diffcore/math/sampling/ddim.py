"""DDIM (Song, Meng & Ermon 2021): sampling, deterministic inversion, latent interpolation.

Step from t to s < t (eq. 12 of the paper, written for any Gaussian path):
    x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z,
    c = eta * sqrt(q-posterior variance) = eta sigma_s / sigma_t sqrt(sigma_t^2 - (alpha_t/alpha_s)^2 sigma_s^2)
eta = 0 is deterministic (the probability-flow ODE's Euler step in (x / alpha, sigma / alpha),
Karras et al. 2022, sec. 4); eta = 1 is DDPM's ancestral sampler. Any N of the T steps of a
discrete schedule can be used (see :func:`diffcore.sampling.timesteps` for the spacings).
"""

from __future__ import annotations

import math

import torch

from .. import schedules as _schedules
from ..denoiser import Denoiser, prior_scale
from ..forward import posterior_coefficients
from .grid import timesteps
from .table import Option, noise_source, sampler


@sampler("ddim", order=1, evals="N", nfe=lambda n, o: n, reference="Song, Meng & Ermon 2021, eq. 12",
         options={"eta": Option(0.0, float, ge=0.0, description="0: deterministic DDIM; 1: DDPM's ancestral sampler")})
def sample_ddim(den, x, ts, *, generator=None, callback=None, noise_fn=None, eta: float = 0.0):
    """DDIM (Song et al. 2021, eq. 12); ``eta`` in [0, 1] interpolates to DDPM."""
    noise = noise_source(noise_fn, generator)
    n = len(ts) - 1
    for i, (t, s) in enumerate(zip(ts, ts[1:])):
        x0, eps = den(x, t)
        a_s, s_s = den.coef(s)
        c = eta * posterior_coefficients(*den.coef(t), a_s, s_s)[2] if eta > 0 else 0.0
        x = a_s * x0 + math.sqrt(max(s_s**2 - c**2, 0.0)) * eps
        if c > 0:
            x = x + c * noise(x)
        if callback is not None:
            callback(i, n, x, x0)
    return x


def ddim_invert(
    model,
    x0: torch.Tensor,
    schedule,
    *,
    steps: int = 50,
    prediction: str = "eps",
    spacing: str | None = None,
    refine: int = 2,
) -> torch.Tensor:
    """Deterministic DDIM inversion x0 -> noise (Song et al. 2021, sec. 4.3 / 5.4): run the
    eta = 0 update backwards, from the clean end up to the first sampling time, so that
    ``generate(model, ddim_invert(model, x0, ...), ..., sampler="ddim")`` returns x0.

    Each step solves x_q from x_p = DDIM(x_q; q -> p) by ``refine`` fixed-point iterations
    (refine = 0 is the usual approximation that evaluates the model at the lower time). The
    result is standard-normal-scaled noise, like the ``noise`` argument of ``generate``.
    """
    schedule = _schedules.get(schedule)
    ts = timesteps(schedule, steps, spacing)  # model times, noisiest first
    den = Denoiser(model, schedule, prediction)
    return invert_along(den, x0, list(ts) + [None], refine=refine) / prior_scale(den, ts[0])


def invert_along(den: Denoiser, x0: torch.Tensor, ts, *, refine: int = 2) -> torch.Tensor:
    """The eta = 0 DDIM update run backwards along the grid ``ts`` (noisiest first, ending at
    the clean end or any time where ``x0`` lies): returns x at ``ts[0]``, unscaled, so that the
    ddim sampler on ``ts`` from there returns ``x0``. Each step solves x_q from
    x_p = DDIM(x_q; q -> p) by ``refine`` fixed-point iterations."""
    ts = list(ts)[::-1]  # ascending: where x0 lies first
    x, prev = x0, ts[0]
    with torch.no_grad():
        for q in ts[1:]:
            a_p, s_p = den.coef(prev)
            a_q, s_q = den.coef(q)
            # x_p = (a_p/a_q) x_q + (s_p - a_p s_q / a_q) eps(x_q)  =>  x_q = (a_q/a_p)(x_p - k eps)
            k = s_p - a_p * s_q / a_q
            _, eps = den(x, prev if prev is not None else q)
            x_q = (a_q / a_p) * (x - k * eps)
            for _ in range(refine):
                _, eps = den(x_q, q)
                x_q = (a_q / a_p) * (x - k * eps)
            x, prev = x_q, q
    return x


def slerp(z0: torch.Tensor, z1: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Spherical linear interpolation between noises (Shoemake 1985; DDIM, Song et al. 2021,
    sec. 5.3): keeps the norm of Gaussian noise, which linear interpolation shrinks."""
    a = torch.as_tensor(alpha, dtype=z0.dtype, device=z0.device)
    flat0, flat1 = z0.flatten(1), z1.flatten(1)
    cos = (flat0 * flat1).sum(1) / (flat0.norm(dim=1) * flat1.norm(dim=1))
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(theta)
    shape = (-1,) + (1,) * (z0.ndim - 1)
    w0 = torch.where(sin > 1e-6, torch.sin((1 - a) * theta) / sin, 1 - a).reshape(shape)
    w1 = torch.where(sin > 1e-6, torch.sin(a * theta) / sin, a).reshape(shape)
    return w0 * z0 + w1 * z1
