"""The calling convention shared by every sampler, and the registry.

A sampler is a plain function

    fn(denoiser, x, ts, *, generator=None, callback=None, noise_fn=None, **options) -> x0

``denoiser`` (:class:`Denoiser`) wraps the user's ``model(x_t, t)`` -- whatever it predicts --
into ``denoiser(x, t) -> (x0_hat, eps_hat)`` (the k-diffusion idea: one wrapper at the edge
instead of a branch per prediction in every sampler) and gives the path coefficients
``denoiser.coef(t) -> (alpha, sigma)`` as Python floats computed once in float64.
``x`` is the starting point already scaled to the prior at ``ts[0]``; ``ts`` are the N model
times, descending. Every sampler ends on the clean data (alpha = 1, sigma = 0) after ``ts[-1]``:
the last step of each one lands there exactly (the "last step to sigma = 0" that diffusers'
history shows is easy to get wrong). ``noise_fn(like)`` draws fresh noise for stochastic
samplers (the domain's noise, e.g. zero centre of mass); ``callback(i, n, x, x0_hat)`` is called
after each step.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch

from .. import schedules as _schedules
from ..denoiser import Denoiser, prior_scale
from ..schedules import Schedule

SPACINGS = ("linspace", "trailing", "leading", "logsnr")


def randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def noise_source(noise_fn, generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """The noise function a stochastic sampler calls: the domain's, or i.i.d. normal."""
    return noise_fn if noise_fn is not None else (lambda like: randn_like(like, generator))


def timesteps(schedule: Schedule, steps: int, spacing: str | None = None) -> list[float]:
    """The N model times, descending.

    Discrete schedules (T steps; step i at t = i / T) choose N of the T steps:
      ``linspace`` (default): i = round(linspace(T, 1, N)): from the noisiest step T (so the
        sampler starts where training's last step is, Lin et al. 2024, "Common diffusion noise
        schedules and sample steps are flawed") down to step 1 (so the final jump to the clean
        data is as short as DDPM's);
      ``trailing``: i = round(T - k T / N), k = 0..N-1 (Lin et al. 2024, table 2): starts at T,
        ends at T / N;
      ``leading``: i = 1 + k floor(T / N), DDIM's code with diffusers' steps_offset = 1
        (starts below T when N does not divide T);
      ``logsnr``: steps nearest to N log-SNR values evenly spaced between step T and step 1
        (the spacing DPM-Solver recommends for small data, Lu et al. 2022).
    Continuous schedules: N times from t_max to t_min, evenly spaced in t (``linspace``,
    ``trailing``) or in log-SNR (``logsnr``).
    The noisiest time is :func:`start_time`: T (t_max) unless the schedule goes below
    log-SNR -10.5 there (cosine's clipped last steps), see ``MIN_LOG_SNR``."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    spacing = spacing or "linspace"
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; valid: {', '.join(SPACINGS)}")
    hi, lo = start_time(schedule), schedule.t_min
    if schedule.discrete:
        T = schedule.num_steps
        top = round(hi * T)  # the noisiest step used (T, except for cosine's clipped tail)
        if steps > top:
            extra = f" (of {T}; its last {T - top} lie below log-SNR {MIN_LOG_SNR})" if top < T else ""
            raise ValueError(f"steps={steps} is more than the {top} steps{extra} of the {schedule.name!r} schedule; use steps <= {top}")
        if steps == 1:
            return [hi]
        if spacing == "trailing":
            idx = [round(top - k * top / steps) for k in range(steps)]
        elif spacing == "leading":
            idx = [1 + k * (top // steps) for k in range(steps)][::-1]
        elif spacing == "linspace":
            idx = [round(top - k * (top - 1) / (steps - 1)) for k in range(steps)]
        else:
            idx = _unique_descending([round(t * T) for t in _logsnr_times(schedule, hi, lo, steps)], top)
        return [i / T for i in idx]
    if steps == 1:
        return [hi]
    if spacing == "leading":
        raise ValueError("spacing 'leading' applies to discrete schedules only; use 'linspace' or 'logsnr'")
    if spacing == "logsnr":
        return _logsnr_times(schedule, hi, lo, steps)
    return [hi + (lo - hi) * k / (steps - 1) for k in range(steps)]


# Sampling starts no noisier than log-SNR -10.5: DDPM's linear schedule ends at -10.1, the
# continuous VP at -10.05, but the cosine schedule's beta clip drives its last steps to -19.8
# (alpha ~ 5e-5), where an eps-predicting network's error is amplified by sigma / alpha ~ 2e4
# in the x0 estimate. Skipping those steps changes x_t by alpha x0 < 0.005 x0.
MIN_LOG_SNR = -10.5


def start_time(schedule: Schedule) -> float:
    """The first (noisiest) model time: t_max, or the latest time whose log-SNR is at least
    MIN_LOG_SNR (on a discrete schedule, the latest such step)."""
    hi = schedule.t_max
    lam = lambda t: float(schedule.log_snr(torch.tensor(t, dtype=torch.float64)))  # noqa: E731
    if lam(hi) >= MIN_LOG_SNR:
        return hi
    if schedule.discrete:
        T = schedule.num_steps
        lams = schedule.log_snr(torch.arange(1, T + 1, dtype=torch.float64) / T)
        ok = torch.nonzero(lams >= MIN_LOG_SNR)
        return (int(ok.max()) + 1) / T if len(ok) else 1 / T
    a, b = schedule.t_min, hi  # lam(a) >= MIN_LOG_SNR > lam(b): bisect
    for _ in range(60):
        m = 0.5 * (a + b)
        a, b = (m, b) if lam(m) >= MIN_LOG_SNR else (a, m)
    return a


def _logsnr_times(schedule: Schedule, hi: float, lo: float, steps: int) -> list[float]:
    """Times at log-SNR values evenly spaced between t = hi and t = lo (bisection on the
    monotone log-SNR)."""
    lam_hi, lam_lo = (float(schedule.log_snr(torch.tensor(v, dtype=torch.float64))) for v in (hi, lo))
    grid = torch.linspace(0, 1, 4097, dtype=torch.float64) * (hi - lo) + lo
    lam = schedule.log_snr(grid)  # decreasing in t
    targets = torch.linspace(lam_hi, lam_lo, steps, dtype=torch.float64)
    pos = torch.searchsorted(-lam, -targets).clamp(1, len(grid) - 1)
    l0, l1 = lam[pos - 1], lam[pos]
    w = ((l0 - targets) / (l0 - l1)).clamp(0, 1)
    ts = (grid[pos - 1] * (1 - w) + grid[pos] * w).tolist()
    ts[0], ts[-1] = hi, lo
    return ts


def _unique_descending(idx: list[int], top: int) -> list[int]:
    """Make step indices strictly decreasing within [1, top], keeping the first and last."""
    n = len(idx)
    out = []
    for k, i in enumerate(idx):
        i = min(i, top if not out else out[-1] - 1)
        out.append(max(i, n - k))
    return out


# ------------------------------------------------------------------------------ registry
_SAMPLERS: dict[str, Callable] = {}


def register(name: str, fn: Callable | None = None, *, replace: bool = False):
    """Register a sampler under ``name`` (also usable as a decorator)."""

    def deco(f):
        if name in _SAMPLERS and not replace and _SAMPLERS[name] is not f:
            raise ValueError(f"a sampler named {name!r} is already registered")
        _SAMPLERS[name] = f
        return f

    return deco(fn) if fn is not None else deco


def unregister(name: str) -> None:
    _SAMPLERS.pop(name, None)


def names() -> list[str]:
    return sorted(_SAMPLERS)


def get(name: str) -> Callable:
    if name not in _SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; valid names: {', '.join(names())}")
    return _SAMPLERS[name]


_COMMON = {"generator", "callback", "noise_fn"}


def generate(
    model: Callable,
    noise: torch.Tensor,
    schedule: Schedule | str,
    *,
    sampler: str = "ddim",
    steps: int | None = None,
    prediction: str = "eps",
    generator: torch.Generator | None = None,
    spacing: str | None = None,
    clip_x0: float | None = None,
    callback: Callable | None = None,
    noise_fn: Callable | None = None,
    **options,
) -> torch.Tensor:
    """Generate samples: ``model(x_t, t)`` returns ``prediction`` ("eps", "x0", "v", "score"
    or "velocity"); ``noise`` is standard normal shaped like the data and is scaled here to
    the schedule's prior at the first time (by sqrt(alpha^2 + sigma^2), the std of x_t for
    standardised data); ``steps`` model times (default: every step of a
    discrete schedule for "ddpm", else 50); ``spacing`` places them (see :func:`timesteps`;
    default: the sampler's ``default_spacing`` attribute, else "linspace"). Sampler-specific ``options`` (e.g. ``eta`` for
    DDIM) are checked against the sampler's signature."""
    schedule = _schedules.get(schedule)
    fn = get(sampler)
    if steps is None:
        steps = round(start_time(schedule) * schedule.num_steps) if (sampler == "ddpm" and schedule.discrete) else 50
    allowed = {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY} - _COMMON
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"sampler {sampler!r} does not take option(s) {', '.join(sorted(unknown))}; "
            f"its options: {', '.join(sorted(allowed)) or 'none'}"
        )
    ts = timesteps(schedule, steps, spacing or getattr(fn, "default_spacing", None))
    den = Denoiser(model, schedule, prediction, clip_x0)
    den.prefetch(ts)
    x = noise * prior_scale(den, ts[0])
    with torch.no_grad():
        return fn(den, x, ts, generator=generator, callback=callback, noise_fn=noise_fn, **options)


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

