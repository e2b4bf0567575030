"""The time grid a sampler walks: N model times, noisiest first, then the clean end.

``grid(schedule, steps, spacing)`` is ``timesteps(schedule, steps, spacing) + [CLEAN]``: the
model times followed by the clean end (alpha = 1, sigma = 0), k-diffusion's ``append_zero``.
Every sampler steps from one entry to the next, so the final step to the data is an ordinary
step of the method (``Denoiser.coef(CLEAN) == (1.0, 0.0)``) rather than a special branch.
The clean end is ``None`` rather than t = 0 because t = 0 is not noise-free on every path
(the VE schedule has sigma(0) = sigma_min).
"""

from __future__ import annotations

import math

import torch

from ..schedules import Schedule

SPACINGS = ("linspace", "trailing", "leading", "leading-multistep", "logsnr", "karras", "shifted")
KARRAS_RHO = 7.0  # EDM's rho (Karras et al. 2022, eq. 5)
SHIFT = 3.0  # "shifted": sigma / alpha multiplied by 3 at every linspace time (SD3's shift, Esser et al. 2024)
CLEAN = None  # the clean end of a grid: alpha = 1, sigma = 0


def grid(schedule: Schedule, steps: int, spacing: str | None = None) -> list[float | None]:
    """The model times of :func:`timesteps`, then :data:`CLEAN`."""
    return timesteps(schedule, steps, spacing) + [CLEAN]


def usable_steps(schedule: Schedule) -> int | None:
    """How many steps of a discrete schedule sampling can use (T, less cosine's clipped tail
    below ``MIN_LOG_SNR``); None for a continuous schedule."""
    return round(start_time(schedule) * schedule.num_steps) if schedule.discrete else None


def check_times(schedule: Schedule, times) -> list[float]:
    """User-given model times (``spacing="custom"``): finite, strictly decreasing, inside the
    schedule's [t_min, t_max]; ValueError naming the first bad one."""
    ts = [float(t) for t in times]
    if not ts:
        raise ValueError("times: give at least one time")
    for i, t in enumerate(ts):
        if not math.isfinite(t) or not schedule.t_min <= t <= schedule.t_max:
            raise ValueError(f"times: {t!r} (#{i + 1}) is outside the {schedule.name!r} schedule's [{schedule.t_min:g}, {schedule.t_max:g}]")
        if i and t >= ts[i - 1]:
            raise ValueError(f"times: must decrease strictly, but #{i + 1} ({t:g}) follows {ts[i - 1]:g}")
    return ts


def timesteps(schedule: Schedule, steps: int, spacing: str | None = None) -> list[float]:
    """The N model times, descending.

    Discrete schedules (T steps; step i at t = i / T) choose N of the T steps:
      ``linspace`` (default): i = round(linspace(T, 1, N)): from the noisiest step T (so the
        sampler starts where training's last step is, Lin et al. 2024, "Common diffusion noise
        schedules and sample steps are flawed") down to step 1 (so the final jump to the clean
        data is as short as DDPM's);
      ``trailing``: i = round(T - k T / N), k = 0..N-1 (Lin et al. 2024, table 2): starts at T,
        ends at T / N;
      ``leading``: i = 1 + k floor(T / N), DDIM's code (diffusers' DDIM with its default
        steps_offset = 0, its step k being our step k + 1)
        (starts below T when N does not divide T);
      ``leading-multistep``: i = 1 + k floor(T / (N + 1)), k = N..1: the grid diffusers'
        multistep schedulers (DPMSolverMultistep, UniPCMultistep, DEISMultistep) call
        "leading" (discrete schedules only);
      ``logsnr``: steps nearest to N log-SNR values evenly spaced between step T and step 1
        (the spacing DPM-Solver recommends for small data, Lu et al. 2022; k-diffusion's
        "exponential" sigmas);
      ``karras``: steps nearest to EDM's noise levels (Karras et al. 2022, eq. 5) in
        tau = sigma / alpha: tau_k = (tau_max^(1/rho) + k / (N - 1) (tau_min^(1/rho) -
        tau_max^(1/rho)))^rho, rho = 7, between step T and step 1;
      ``shifted``: the ``linspace`` times moved to where sigma / alpha is :data:`SHIFT` = 3
        times larger (log-SNR lower by 2 log 3), clamped to the noisiest time: SD3's time shift
        (Esser et al. 2024, sec. 5.3.2; diffusers' ``flow_shift``), which on the flow path is
        t -> 3 t / (1 + 2 t); more steps at high noise.
    Continuous schedules: N times from t_max to t_min evenly spaced in t (``linspace``), or
    ``trailing``: t_max - k (t_max - t_min) / N, k = 0..N-1, stopping one step short of t_min as
    the discrete trailing grid stops at T / N (the grid of diffusers' flow-matching schedulers,
    sigma = 1 ... 1/N, then 0); in log-SNR (``logsnr``), at EDM's levels (``karras``), or shifted.
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
        elif spacing == "leading-multistep":
            idx = [1 + k * (top // (steps + 1)) for k in range(steps, 0, -1)]
        elif spacing in ("linspace", "shifted"):
            idx = [round(top - k * (top - 1) / (steps - 1)) for k in range(steps)]
            if spacing == "shifted":
                idx = _unique_descending([round(t * T) for t in _shifted(schedule, hi, lo, [i / T for i in idx])], top)
        else:
            idx = _unique_descending([round(t * T) for t in _lambda_times(schedule, hi, lo, steps, spacing)], top)
        return [i / T for i in idx]
    if steps == 1:
        return [hi]
    if spacing in ("leading", "leading-multistep"):
        raise ValueError(f"spacing {spacing!r} applies to discrete schedules only; use 'linspace' or 'logsnr'")
    if spacing in ("logsnr", "karras"):
        return _lambda_times(schedule, hi, lo, steps, spacing)
    if spacing == "trailing":
        return [hi + (lo - hi) * k / steps for k in range(steps)]
    ts = [hi + (lo - hi) * k / (steps - 1) for k in range(steps)]
    return _shifted(schedule, hi, lo, ts) if spacing == "shifted" else ts


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


def tuned_times(schedule: Schedule, steps: int, fractions, *, round_steps: bool = True) -> list[float]:
    """``steps`` model times from a tuned grid: ``fractions`` are positions in log-SNR between
    the noisiest time (0: :func:`start_time`) and the least noisy (1: ``t_min``), noisiest
    first, as ``benchmarks/frontier.py`` finds them for one step count; another step count
    reads the same curve at evenly spaced positions (linear interpolation). In log-SNR a grid
    can be read on any schedule; a discrete schedule's times are rounded to distinct
    steps (``round_steps=False`` keeps them between steps, for the tuner's continuous search)."""
    f = torch.tensor([float(v) for v in fractions], dtype=torch.float64)
    if len(f) < 2 or f[0] != 0 or not bool((f[1:] > f[:-1]).all()) or float(f[-1]) > 1:
        raise ValueError(f"tuned grid: fractions must rise strictly from 0 to at most 1, got {fractions!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    hi, lo = start_time(schedule), schedule.t_min
    if steps == 1:
        return [hi]
    pos = torch.linspace(0, len(f) - 1, steps, dtype=torch.float64)
    k = pos.floor().long().clamp(max=len(f) - 2)
    at = f[k] + (pos - k) * (f[k + 1] - f[k])
    lam_hi, lam_lo = (schedule.log_snr(torch.tensor(v, dtype=torch.float64)) for v in (hi, lo))
    dense = torch.linspace(0, 1, 4097, dtype=torch.float64) * (hi - lo) + lo  # as _lambda_times
    ts = _times_at(dense, schedule.log_snr(dense), lam_hi + at * (lam_lo - lam_hi))
    ts[0] = hi
    if float(at[-1]) == 1.0:
        ts[-1] = lo
    if schedule.discrete and round_steps:
        T = schedule.num_steps
        if steps > round(hi * T):
            raise ValueError(f"steps={steps} is more than the {round(hi * T)} usable steps of the {schedule.name!r} schedule")
        return [i / T for i in _unique_descending([round(t * T) for t in ts], round(hi * T))]
    return ts


def _lambda_times(schedule: Schedule, hi: float, lo: float, steps: int, spacing: str) -> list[float]:
    """Times at log-SNR values between t = hi and t = lo, evenly spaced (``logsnr``) or at
    EDM's levels (``karras``), found by interpolation on the monotone log-SNR."""
    lam_hi, lam_lo = (float(schedule.log_snr(torch.tensor(v, dtype=torch.float64))) for v in (hi, lo))
    grid = torch.linspace(0, 1, 4097, dtype=torch.float64) * (hi - lo) + lo
    lam = schedule.log_snr(grid)  # decreasing in t
    if spacing == "karras":  # tau = sigma / alpha = exp(-lambda / 2)
        r_hi, r_lo = math.exp(-lam_hi / 2) ** (1 / KARRAS_RHO), math.exp(-lam_lo / 2) ** (1 / KARRAS_RHO)
        taus = (r_hi + torch.linspace(0, 1, steps, dtype=torch.float64) * (r_lo - r_hi)) ** KARRAS_RHO
        targets = -2 * torch.log(taus)
    else:
        targets = torch.linspace(lam_hi, lam_lo, steps, dtype=torch.float64)
    ts = _times_at(grid, lam, targets)
    ts[0], ts[-1] = hi, lo
    return ts


def _times_at(grid: torch.Tensor, lam: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Times where the log-SNR ``lam`` (decreasing along ``grid``) takes the ``targets``
    values, by linear interpolation (clamped to the grid's ends)."""
    pos = torch.searchsorted(-lam, -targets).clamp(1, len(grid) - 1)
    l0, l1 = lam[pos - 1], lam[pos]
    w = ((l0 - targets) / (l0 - l1)).clamp(0, 1)
    return (grid[pos - 1] * (1 - w) + grid[pos] * w).tolist()


def _shifted(schedule: Schedule, hi: float, lo: float, ts: list[float]) -> list[float]:
    """``ts`` moved to log-SNR lambda(t) - 2 log SHIFT (sigma / alpha times SHIFT), inside [lo, hi]."""
    grid = torch.linspace(0, 1, 4097, dtype=torch.float64) * (hi - lo) + lo
    targets = schedule.log_snr(torch.tensor(ts, dtype=torch.float64)) - 2 * math.log(SHIFT)
    return _times_at(grid, schedule.log_snr(grid), targets)


def _unique_descending(idx: list[int], top: int) -> list[int]:
    """Make step indices strictly decreasing within [1, top], keeping the first and last."""
    n = len(idx)
    out = []
    for k, i in enumerate(idx):
        i = min(i, top if not out else out[-1] - 1)
        out.append(max(i, n - k))
    return out
