"""Checks of a schedule (:func:`check_schedule`): a :class:`~diffcore.schedules.Schedule` with
0 <= t_min < t_max <= 1; alpha, sigma and log-SNR float64, finite and positive; log-SNR
consistent with alpha and sigma and decreasing in t; derivatives matching finite differences;
discrete schedules' betas consistent with alpha; the loss, DDIM and DDPM through it reproduce a
Gaussian mixture with its exact denoiser."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..math import schedules as _schedules
from .report import Report, _Checker, _Stop, run_checks
from .sampler import check_distance, mixture, threshold


def check_schedule(
    factory: Callable[..., Any],
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    num: int = 2000,
    raise_on_failure: bool = True,
    report: Report | None = None,
) -> Report:
    """Check a schedule factory (the ``diffcore_register_schedules`` kind; a
    :class:`~diffcore.schedules.Schedule` instance is accepted too) built with ``options``."""

    def checks(ck: _Checker) -> None:
        s = _build(ck, factory, dict(options or {}))
        _check_path(ck, s)
        _check_derivatives(ck, s)
        _check_discrete(ck, s)
        _check_through_sampling(ck, s, num)

    return run_checks(f"schedule {name or getattr(factory, '__name__', repr(factory))!r}", checks, report, raise_on_failure)


def _t(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def _build(ck: _Checker, factory: Any, options: dict) -> _schedules.Schedule:
    if isinstance(factory, _schedules.Schedule):
        s = factory
    else:
        with ck.running(f"factory(**{options})", "the factory must build a schedule from keyword options"):
            s = factory(**options)
    if not isinstance(s, _schedules.Schedule):
        ck.fail(f"the factory returned {type(s).__name__}, not a diffcore.schedules.Schedule", "subclass diffcore.schedules.Schedule")
        raise _Stop()
    lo, hi = float(s.t_min), float(s.t_max)
    if not ck.expect(0.0 <= lo < hi <= 1.0, "0 <= t_min < t_max <= 1", f"t_min={lo}, t_max={hi}", "use times in [0, 1] with t_min < t_max (t = 1 is the noise end)"):
        raise _Stop()
    return s


def _check_path(ck: _Checker, s: _schedules.Schedule) -> None:
    """alpha, sigma, log-SNR on a grid of [t_min, t_max]: float64, finite, positive, consistent, decreasing."""
    lo, hi = float(s.t_min), float(s.t_max)
    grid = torch.linspace(lo, hi, 513, dtype=torch.float64)
    with ck.running("alpha/sigma/log_snr on a grid of t", "alpha(t), sigma(t), log_snr(t) take a float64 tensor of any shape"):
        a, sg, lam = s.alpha(grid), s.sigma(grid), s.log_snr(grid)
        s.alpha(_t(0.5 * (lo + hi))), s.sigma(_t(0.5 * (lo + hi)))
    for nm, v in (("alpha", a), ("sigma", sg), ("log_snr", lam)):
        if not isinstance(v, torch.Tensor) or v.shape != grid.shape:
            ck.fail(f"{nm}(t) returned {getattr(v, 'shape', type(v).__name__)} for t of shape {tuple(grid.shape)}", "return a tensor shaped like t")
            raise _Stop()
        ck.expect(v.dtype == torch.float64, f"{nm} is float64", f"{nm}(t) is {v.dtype}", "compute in float64 (the samplers cast at the edge)")
        ck.expect(bool(torch.isfinite(v).all()), f"{nm} is finite on [t_min, t_max]", f"{nm}(t) is NaN or infinite on [t_min, t_max]",
                  "keep t_min and t_max inside the range where the path is not singular")
    pos = bool((a > 0).all()) and bool((sg > 0).all())
    ck.expect(pos, "alpha and sigma are positive", f"alpha or sigma is <= 0 on [t_min, t_max] (min alpha {float(a.min()):.3g}, min sigma {float(sg.min()):.3g})",
              "keep t_min/t_max where alpha > 0 and sigma > 0")
    if pos:
        ref = 2.0 * (torch.log(a) - torch.log(sg))
        err = float(((lam - ref).abs() / (1.0 + ref.abs())).max())
        ck.expect(err < 1e-6, "log_snr = 2 log(alpha / sigma)", f"log_snr(t) differs from 2 log(alpha / sigma) by up to {err:.3g} (relative)",
                  "derive log_snr from alpha and sigma (the base class does)")
    steps = lam[1:] - lam[:-1]
    ck.expect(bool((steps <= 1e-9 * (1.0 + lam[1:].abs())).all()) and float(lam[0]) > float(lam[-1]), "log-SNR decreases in t",
              f"log-SNR is not decreasing in t (it rises by up to {float(steps.max()):.3g})", "t = 0 is the data end, t = 1 the noise end: the noise must grow with t")
    ck.expect(math.isfinite(float(s.prior_std)) and float(s.prior_std) > 0, "prior_std is positive", f"prior_std is {s.prior_std}")


def _check_derivatives(ck: _Checker, s: _schedules.Schedule) -> None:
    """d_alpha and d_sigma against central differences (inside a step of a discrete schedule)."""
    lo, hi = float(s.t_min), float(s.t_max)
    pts = [lo + f * (hi - lo) for f in (0.1, 0.3, 0.5, 0.7, 0.9)]
    if s.discrete:
        T = s.num_steps
        pts = sorted({min(max((math.floor(p * T) + 0.5) / T, lo), hi) for p in pts})
    h = 1e-6 * (hi - lo)
    worst = []
    with ck.running("d_alpha/d_sigma", "override d_log_alpha/d_sigma analytically, or leave them to the base class's autograd"):
        for p in pts:
            for nm, f, df in (("d_alpha", s.alpha, s.d_alpha), ("d_sigma", s.sigma, s.d_sigma)):
                fd = float((f(_t(p + h)) - f(_t(p - h))) / (2 * h))
                an = float(df(_t(p)))
                if not abs(an - fd) <= 1e-3 * (abs(fd) + 1e-3):
                    worst.append(f"{nm}({p:.4g}) = {an:.6g}, finite differences give {fd:.6g}")
    ck.expect(not worst, "derivatives match finite differences", "derivatives disagree with alpha/sigma: " + "; ".join(worst[:3]),
              "fix d_log_alpha/d_sigma (the SDE samplers, the probability-flow ODE and velocity prediction use them)")


def _check_discrete(ck: _Checker, s: _schedules.Schedule) -> None:
    """A discrete schedule: num_steps, alphas_cumprod, and alpha(i/T)^2 = alphas_cumprod[i-1]."""
    if not s.discrete:
        return
    T = getattr(s, "num_steps", None)
    ac = getattr(s, "alphas_cumprod", None)
    if not (isinstance(T, int) and isinstance(ac, torch.Tensor) and len(ac) == T):
        ck.fail("a discrete schedule needs num_steps (int) and alphas_cumprod (a tensor of length num_steps)", "subclass diffcore.schedules.DiscreteSchedule")
        return
    at = s.alpha(torch.arange(1, T + 1, dtype=torch.float64) / T) ** 2
    ck.expect(bool(torch.allclose(at, ac.to(torch.float64), rtol=1e-9, atol=1e-12)), "alpha(i/T)^2 = alphas_cumprod[i-1]",
              "alpha(i/T)^2 differs from alphas_cumprod[i-1]", "step i of T sits at t = i / T")


def _check_through_sampling(ck: _Checker, s: _schedules.Schedule, num: int) -> None:
    """The schedule through the loss and the samplers, with the exact denoiser of a mixture."""
    from ..math.losses import DiffusionLoss
    from ..math.sampling import generate

    gm = mixture()
    model = gm.predictor(s, "eps")
    with ck.running("DiffusionLoss(schedule) with the exact denoiser"):
        x0 = gm.sample(512, torch.Generator().manual_seed(4))
        loss = float(DiffusionLoss(s, prediction="eps")(model, x0, generator=torch.Generator().manual_seed(0)))
    ck.expect(math.isfinite(loss) and loss < 0.95, f"the exact denoiser's eps loss is below 1 ({loss:.3f})",
              f"the exact denoiser's eps loss is {loss:.3f}; predicting zero scores 1", "check that alpha and sigma describe x_t = alpha x0 + sigma eps")
    thr = threshold(gm, num)
    target = gm.sample(num, torch.Generator().manual_seed(2))
    for sampler, steps_n in (("ddim", 50), ("ddpm", 100)):
        z = torch.randn(num, gm.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        if s.discrete:
            steps_n = min(steps_n, s.num_steps)
        what = f"generate(exact Gaussian-mixture denoiser, sampler {sampler!r}, {steps_n} steps)"
        with ck.running(what, stop=False):
            x = generate(model, z, s, sampler=sampler, steps=steps_n, prediction="eps", generator=torch.Generator().manual_seed(1))
            check_distance(ck, what, f"{sampler} reproduces a Gaussian mixture", x, target, thr,
                           "check alpha(t) and sigma(t) (x_t = alpha x0 + sigma eps) and that the prior end t_max is close to pure noise")
