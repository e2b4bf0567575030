"""Classifier-free guidance (Ho & Salimans 2022) and its variants, as wrappers around any model.

    out = u + w (c - u),   c = net(x, t, cond),   u = net(x, t, None)

w = 1 is the plain conditional model, w = 0 the unconditional one, w > 1 sharpens the
condition (the paper's guidance strength is w - 1). The result has the same calling convention
as any model, so every sampler works with it. Guiding the eps / v / x0 / score / velocity
output is the same linear combination for all of them (each is affine in eps at fixed x_t).

The variants (:class:`Guidance`, applied by :func:`guided`) keep that convention: each returns
``model(x_t, t)`` in the network's own prediction, computed from c and u in x0 space
(x0_c, x0_u; at fixed x_t any prediction fixes x0 and eps = (x_t - alpha x0) / sigma):

- ``cfg``: the above.
- ``interval`` (Kynkaanniemi et al. 2024, "Applying guidance in a limited interval improves
  sample and distribution quality"): CFG where the EDM noise level sigma_t / alpha_t lies in
  (lo, hi], the conditional model elsewhere (one evaluation there).
- ``rescaled`` (Lin et al. 2024, "Common diffusion noise schedules and sample steps are
  flawed", sec. 3.4): x_cfg = u + w (c - u); x_res = x_cfg std(x_c) / std(x_cfg)
  (per-sample std over all non-batch dims); out = phi x_res + (1 - phi) x_cfg, applied to
  x0 (``space="x0"``) or to the network's own output (``space="output"``, the paper's v).
- ``apg`` (Sadat et al. 2024, "Eliminating oversaturation and artifacts of high guidance
  scales", Algorithm 1): D = x0_c - x0_u, optionally D <- D + beta D_prev (momentum, beta < 0
  in the paper) and D <- D min(1, r / |D|) (norm threshold); D = D_par + D_orth relative to
  x0_c; x0 = x0_c + (w - 1)(D_orth + eta D_par). eta = 1 without momentum or threshold is CFG.
  The momentum keeps state across calls, per wrapper: make one wrapper per sampling run.
- ``cfg++`` (Chung et al. 2024, "CFG++: manifold-constrained classifier free guidance", DDIM form):
  the DDIM step takes x0 from the guided x0_lambda = x0_u + lambda (x0_c - x0_u) (``scale`` is
  lambda, in [0, 1] in the paper) and renoises with the *unconditional* eps_u:
  x_s = alpha_s x0_lambda + sigma_s eps_u. One tensor cannot carry that inconsistent pair,
  but the step equals a CFG step x_s = alpha_s x0_w + sigma_s eps_w with the per-step scale
      w_t = lambda / (1 - exp(-h)),   h = log(alpha_s / sigma_s) - log(alpha_t / sigma_t),
  (expand both in x_t and x0_u, x0_c), so the wrapper applies CFG with w_t, taking s as the
  next time of the sampling grid ``ts`` (w = lambda at the last step to the clean end). It is
  the paper's method exactly for DDIM with eta = 0; for other samplers it is CFG with the scale
  CFG++ implies on each step of the grid (times between grid points use the step they lie in).
  With ``clip_x0`` the clamp acts on the rescaled x0_w (often far outside the data range),
  not on the paper's x0_lambda, so it is no longer the paper's step: use it without clipping.
  APG's momentum (``beta`` != 0) advances at every model call: once per step for one-evaluation
  samplers (as the paper), more often for Heun or correctors, and it does not follow SMC's
  resampling of particles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .forward import bcast, from_x0_eps, to_x0_eps

VARIANTS = ("cfg", "interval", "rescaled", "apg", "cfg++")

# Each variant's options: default, and a check (message when it fails).
OPTIONS: dict[str, dict[str, tuple[Any, Callable[[Any], bool], str]]] = {
    "cfg": {},
    # Kynkaanniemi et al.'s EDM2-S choice (ImageNet-512, FID): sigma in (0.28, 5.42].
    "interval": {"lo": (0.28, lambda v: v >= 0, ">= 0"), "hi": (5.42, lambda v: v >= 0, ">= 0")},
    "rescaled": {"phi": (0.7, lambda v: 0 <= v <= 1, "in [0, 1]"),
                 "space": ("x0", lambda v: v in ("x0", "output"), "'x0' or 'output'")},
    "apg": {"eta": (0.0, lambda v: v >= 0, ">= 0"), "r": (0.0, lambda v: v >= 0, ">= 0 (0: no threshold)"),
            "beta": (0.0, lambda v: -1 < v < 1, "in (-1, 1) (0: no momentum)")},
    "cfg++": {},
}


@dataclass(frozen=True)
class Guidance:
    """A guidance rule: ``scale`` (w; lambda for cfg++), ``variant`` (one of :data:`VARIANTS`)
    and the variant's ``options`` (:data:`OPTIONS`; missing ones take their defaults)."""

    scale: float = 1.0
    variant: str = "cfg"
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, scale: float = 1.0, variant: str = "cfg", options: Mapping[str, Any] | None = None) -> "Guidance":
        """Check and fill in the defaults; raises ValueError naming what is wrong."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown guidance variant {variant!r}; valid: {', '.join(VARIANTS)}")
        if not (math.isfinite(scale) and scale >= 0):
            raise ValueError(f"guidance scale must be finite and >= 0, got {scale!r}")
        spec, given = OPTIONS[variant], dict(options or {})
        unknown = sorted(set(given) - set(spec))
        if unknown:
            valid = ", ".join(spec) or "none"
            raise ValueError(f"guidance variant {variant!r}: unknown option(s) {', '.join(unknown)}; valid: {valid}")
        opts = {}
        for k, (default, ok, msg) in spec.items():
            v = given.get(k, default)
            if isinstance(default, float):
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    raise ValueError(f"guidance variant {variant!r}: option {k} must be a number, got {v!r}") from None
            if not ok(v):
                raise ValueError(f"guidance variant {variant!r}: option {k} must be {msg}, got {v!r}")
            opts[k] = v
        if variant == "interval" and opts["lo"] > opts["hi"]:
            raise ValueError(f"guidance variant 'interval': lo={opts['lo']} > hi={opts['hi']}")
        return cls(float(scale), variant, opts)


def classifier_free(net: Callable, cond, scale: float) -> Callable:
    """``model(x_t, t)`` guided towards ``cond`` with scale ``w`` (see the module docstring)."""
    if cond is None or scale == 1.0:
        return lambda x, t: net(x, t, cond)

    def guided(x, t):
        c = net(x, t, cond)
        u = net(x, t, None)
        return u + scale * (c - u)

    return guided


def guided(net: Callable, cond, guidance: Guidance | float, schedule=None, prediction: str = "eps",
           ts=None) -> Callable:
    """``model(x_t, t)`` guided towards ``cond`` by ``guidance`` (a :class:`Guidance`, or a
    float: plain CFG), returning ``prediction`` like ``net``. The variants other than cfg need
    the ``schedule``; cfg++ also the sampling grid ``ts`` (noisiest first; ``None`` is the clean
    end). ``cond=None`` is the unconditional model, whatever the guidance."""
    if not isinstance(guidance, Guidance):
        guidance = Guidance.make(float(guidance))
    w, variant, o = guidance.scale, guidance.variant, guidance.options
    if cond is None or variant == "cfg" or (w == 1.0 and variant != "cfg++"):
        return classifier_free(net, cond, w)
    if schedule is None:
        raise ValueError(f"guidance variant {variant!r} needs the schedule")

    def coef(t, like):
        t64 = t.detach().cpu().to(torch.float64)
        return bcast(schedule.alpha(t64), like), bcast(schedule.sigma(t64), like)

    def pair(x, t):
        c, u = net(x, t, cond), net(x, t, None)
        return c, u, to_x0_eps(prediction, c, x, t, schedule)[0], to_x0_eps(prediction, u, x, t, schedule)[0]

    def out_from_x0(x0, x, t):
        a, s = coef(t, x)
        return from_x0_eps(prediction, x0, (x - a.to(x) * x0) / s.to(x), t, schedule).to(x)

    if variant == "interval":
        lo, hi = o["lo"], o["hi"]

        def model(x, t):
            a, s = coef(t, x[:, :1])
            inside = ((s / a) > lo) & ((s / a) <= hi)  # [B, 1], per sample
            if not bool(inside.any()):
                return net(x, t, cond)
            c, u = net(x, t, cond), net(x, t, None)
            g = u + w * (c - u)
            return g if bool(inside.all()) else torch.where(inside.flatten().reshape((-1,) + (1,) * (g.ndim - 1)).to(g.device), g, c)

        return model

    if variant == "rescaled":
        phi, space = o["phi"], o["space"]

        def model(x, t):
            if space == "x0":
                _, _, pos, neg = pair(x, t)
            else:
                pos, neg = net(x, t, cond), net(x, t, None)
            cfg = neg + w * (pos - neg)
            res = cfg * (_std(pos) / _std(cfg))
            mixed = phi * res + (1 - phi) * cfg
            return out_from_x0(mixed, x, t) if space == "x0" else mixed

        return model

    if variant == "apg":
        return _APG(w, o["eta"], o["r"], o["beta"], pair, out_from_x0)

    # cfg++: CFG with w_t = lambda / (1 - exp(-h)) on the grid step that t lies in.
    if ts is None:
        raise ValueError("guidance variant 'cfg++' needs the sampling grid ts")
    grid = [float(v) for v in ts if v is not None]

    def scale_at(t: float) -> float:
        nxt = next((g for g in grid if g < t - 1e-6 * max(abs(t), 1e-3)), None)  # the step's end time
        if nxt is None:
            return w  # the last step ends at the clean end: x_s = x0_lambda
        a_t, s_t, a_s, s_s = (float(f(torch.tensor(v, dtype=torch.float64))) for v in (t, nxt)
                              for f in (schedule.alpha, schedule.sigma))
        return w / (1.0 - (s_s / a_s) / (s_t / a_t))

    def model(x, t):
        c, u = net(x, t, cond), net(x, t, None)
        ws = torch.tensor([scale_at(v) for v in t.detach().cpu().double().tolist()], dtype=c.dtype, device=c.device)
        return u + bcast(ws, c) * (c - u)

    return model


def _std(v: torch.Tensor) -> torch.Tensor:
    """Per-sample std over all non-batch dims, shaped to broadcast against ``v``."""
    return v.flatten(1).std(dim=1).reshape((-1,) + (1,) * (v.ndim - 1))


class _APG:
    """Adaptive projected guidance (Sadat et al. 2024, Algorithm 1) in x0 space, with its
    momentum buffer (reset when the batch shape changes)."""

    def __init__(self, w, eta, r, beta, pair, out_from_x0):
        self.w, self.eta, self.r, self.beta = w, eta, r, beta
        self.pair, self.out_from_x0 = pair, out_from_x0
        self.running: torch.Tensor | None = None

    def __call__(self, x, t):
        _, _, x0c, x0u = self.pair(x, t)
        d = x0c - x0u
        if self.beta != 0.0:
            if self.running is not None and self.running.shape == d.shape:
                d = d + self.beta * self.running
            self.running = d
        if self.r > 0:
            norm = d.flatten(1).norm(dim=1).reshape((-1,) + (1,) * (d.ndim - 1))
            d = d * torch.clamp(self.r / norm, max=1.0)
        unit = x0c.flatten(1)
        unit = (unit / unit.norm(dim=1, keepdim=True)).reshape(x0c.shape)
        par = (d * unit).flatten(1).sum(1).reshape((-1,) + (1,) * (d.ndim - 1)) * unit
        update = (d - par) + self.eta * par
        return self.out_from_x0(x0c + (self.w - 1) * update, x, t)
