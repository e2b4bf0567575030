"""Editing: sampling conditioned on known parts of the data, with any sampler of the table.

Three methods, one mechanism, any domain (the data are tensors; a domain says what "a part" is
by a ``keep`` mask, 1 where the input is kept):

- **Replacement** (Song et al. 2021, appendix I.2). At every model evaluation the kept entries
  of x_t are replaced by a forward-noised copy of the input, ``alpha_t known + sigma_t z``, a
  fresh draw from q(x_t | known); the sampler moves the others. The kept entries come back
  exactly at the end. Because the replacement happens where the network is called (a
  :class:`~diffcore.math.denoiser.Denoiser` that replaces), it runs with every sampler of the
  table, multistep ones included, without a branch in any of them.
- **RePaint resampling** (Lugmayr et al. 2022, Algorithm 1 with jump length 1). Replacement alone
  generates the free part from p(x_free | noised known), not from p(x_free | known): the two
  parts disagree near the boundary. RePaint harmonises them by going back and forth: after
  each step t -> s it draws x_t ~ q(x_t | x_s) and redoes the step, ``resample`` times in all.
  Each step then runs on its own, as a one-step grid (t, s); multistep solvers lose their
  history and run first order, and a sampler must be ``stepwise`` (its table entry).
- **SDEdit** (Meng et al. 2022). Start from q(x_t0 | input) and run the sampler from t0 on:
  ``strength`` in [0, 1] keeps the last ``round(strength N)`` steps of the plan's N-step grid
  (diffusers' img2img convention; at least one step when strength > 0). Strength 0 returns the
  input; strength 1 starts from the plan's own prior (the input is then not used at the start,
  so it is plain sampling: q(x_T | input) differs from the prior by alpha_T input, ~0.006 input
  on the linear schedule).
- **Inversion** (DDIM, Song et al. 2021, sec. 4.3): :func:`invert` runs the deterministic DDIM
  update backwards from the input to the first kept time; :func:`edit` with ``start=`` then
  samples from there, e.g. with another condition or guidance scale.

Masks combine with each: SDEdit or inversion with a ``keep`` mask changes only the free part.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..denoiser import Denoiser, prior_scale
from .ddim import invert_along
from .plan import SamplingPlan
from .table import get, noise_source


def tail(plan: SamplingPlan, strength: float = 1.0) -> tuple:
    """The part of the plan's grid an edit of ``strength`` runs: its last ``k`` model times and
    the clean end, k = N at strength 1, ``max(1, round(strength N))`` below, 0 at strength 0."""
    if not (isinstance(strength, (int, float)) and math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength must be a number in [0, 1] (1: from pure noise; 0: the input itself), got {strength!r}")
    n = len(plan.ts) - 1
    k = n if strength >= 1.0 else (0 if strength <= 0.0 else min(n, max(1, round(strength * n))))
    return plan.ts[n - k:]


class Replacing(Denoiser):
    """A denoiser that replaces the kept entries of x_t by ``alpha_t known + sigma_t z`` (z from
    ``noise``, fresh at every evaluation) before the network sees them."""

    def __init__(self, plan: SamplingPlan, model: Callable, known: torch.Tensor, keep: torch.Tensor,
                 noise: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__(model, plan.schedule, plan.prediction, plan.clip_x0)
        self.known, self.keep, self.noise = known, keep.to(known.dtype).expand_as(known) > 0.5, noise
        self.prefetch(plan.ts)

    def noised(self, t) -> torch.Tensor:
        a, s = self.coef(t)
        return a * self.known + s * self.noise(self.known) if s > 0 else a * self.known

    def __call__(self, x: torch.Tensor, t: float):
        return super().__call__(torch.where(self.keep, self.noised(t), x), t)


def check_keep(known: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor | None:
    """``keep`` checked against ``known`` (broadcastable, binary); None when nothing is kept."""
    if keep is None:
        return None
    try:
        torch.broadcast_shapes(keep.shape, known.shape)
    except RuntimeError:
        raise ValueError(f"keep of shape {tuple(keep.shape)} does not broadcast to the data's {tuple(known.shape)}") from None
    if not bool(((keep == 0) | (keep == 1)).all()):
        raise ValueError("keep must be binary: 1 where the input is kept, 0 where it is generated")
    return keep if bool(keep.any()) else None


def edit(
    plan: SamplingPlan,
    model: Callable,
    noise: torch.Tensor,
    *,
    known: torch.Tensor,
    keep: torch.Tensor | None = None,
    strength: float = 1.0,
    resample: int = 1,
    jump: int = 1,
    start: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    noise_fn: Callable | None = None,
    callback: Callable | None = None,
) -> torch.Tensor:
    """Sample as ``plan`` says, conditioned on ``known`` (shaped like the data): the entries
    where ``keep`` is 1 are kept (replacement, with ``resample`` > 1 RePaint), the run starts
    at ``strength`` (SDEdit: from q(x_t0 | known)) or from ``start``, the state at the first
    kept time (from :func:`invert`). ``noise`` is standard normal shaped like the data, used
    at strength 1 as :meth:`SamplingPlan.run` uses it. Returns x0."""
    keep = check_keep(known, keep)
    if not (isinstance(resample, int) and resample >= 1):
        raise ValueError(f"resample must be an integer >= 1 (1: no RePaint resampling), got {resample!r}")
    ts = tail(plan, strength)
    if len(ts) == 1:
        return known.clone()
    draw = noise_source(noise_fn, generator)
    den = Replacing(plan, model, known, keep, draw) if keep is not None else plan.denoiser(model)
    if start is not None:
        x = start
    elif len(ts) == len(plan.ts):
        x = noise * prior_scale(den, ts[0])
    else:
        a, s = den.coef(ts[0])
        x = a * known + s * noise
    kw = dict(generator=generator, noise_fn=noise_fn)
    if resample == 1:
        x = plan.run_from(den, x, ts, callback=callback, **kw)
    else:
        if not get(plan.sampler).stepwise:
            raise ValueError(f"sampler {plan.sampler!r} cannot run one step at a time, which RePaint resampling needs; "
                             "use resample=1 or another sampler (e.g. ddpm, ddim)")
        n = len(ts) - 1
        for a in range(0, n, jump):  # segments of `jump` steps, each run `resample` times
            seg = ts[a:a + jump + 1]
            for j in range(resample):
                x_s = plan.run_from(den, x, seg, **kw)
                if j + 1 < resample:  # jump back: x_t ~ q(x_t | x_s)
                    (a_s, s_s), (a_t, s_t) = den.coef(seg[-1]), den.coef(seg[0])
                    x = (a_t / a_s) * x_s + math.sqrt(max(s_t**2 - (a_t / a_s * s_s) ** 2, 0.0)) * draw(x_s)
            x = x_s
            if callback is not None:
                callback(min(a + jump, n) - 1, n, x, None)
    return torch.where(keep.to(x.dtype).expand_as(x) > 0.5, known, x) if keep is not None else x


def invert(plan: SamplingPlan, model: Callable, x0: torch.Tensor, *, strength: float = 1.0, refine: int = 2) -> torch.Tensor:
    """DDIM inversion of ``x0`` along the plan's grid up to the first time an edit of
    ``strength`` starts from: the ``start`` that makes :func:`edit` with the ddim sampler
    (eta = 0) and the same model return ``x0``. Pass a different model (another condition, a
    guidance scale) to :func:`edit` to change what it returns."""
    ts = tail(plan, strength)
    return invert_along(plan.denoiser(model), x0, ts, refine=refine)


def smc(
    plan: SamplingPlan,
    model: Callable,
    noise: torch.Tensor,
    *,
    known: torch.Tensor,
    keep: torch.Tensor,
    particles: int,
    ess: float = 0.5,
    generator: torch.Generator | None = None,
    noise_fn: Callable | None = None,
) -> torch.Tensor:
    """Inpainting by sequential Monte Carlo (SMCDiff, Trippe et al. 2022, Algorithm 2): exact as
    the particles grow, where replacement and RePaint are not (docs/editing.md shows where they
    miss). The batch is ``B / particles`` groups of ``particles`` rows; rows of a group share
    their input. The kept part follows one forward-noised path y_t of the input (drawn upwards
    from the clean end); each DDPM step t -> s weighs a particle by the density its reverse
    kernel gives the kept part, N(y_s; mean_kept, std^2), resamples a group when its effective
    sample size falls below ``ess`` (systematic resampling), then moves the free part; at the
    end every row is an independent draw from its group's final weights, so any one row of a
    group (the platform keeps the first) is a sample. The plan's sampler must be "ddpm"."""
    keep = check_keep(known, keep)
    if plan.sampler != "ddpm":
        raise ValueError(f"smc runs DDPM's Gaussian kernels; make the plan with sampler 'ddpm', not {plan.sampler!r}")
    b = known.shape[0]
    if keep is None or not (isinstance(particles, int) and particles >= 1 and b % particles == 0):
        raise ValueError(f"smc needs a keep mask with kept entries and a batch ({b} rows) made of groups of `particles` rows, got {particles!r}")
    from ..forward import posterior_coefficients

    draw = noise_source(noise_fn, generator)
    den = plan.denoiser(model)
    kept = keep.to(known.dtype).expand_as(known)
    ts = list(plan.ts)
    # The kept part's forward path, upwards from the clean end: y_t ~ q(y_t | y_s).
    # One path per group (its particles are weighed against the same y_t), upwards from the clean end.
    def shared(z):
        return z.view(b // particles, particles, *z.shape[1:])[:, :1].expand(-1, particles, *z.shape[1:]).reshape(z.shape)

    path = {ts[-1]: known}
    for s, t in zip(ts[::-1], ts[-2::-1]):
        (a_s, s_s), (a_t, s_t) = den.coef(s), den.coef(t)
        path[t] = (a_t / a_s) * path[s] + math.sqrt(max(s_t**2 - (a_t / a_s * s_s) ** 2, 0.0)) * shared(draw(known))
    x = torch.where(kept > 0.5, path[ts[0]], noise * prior_scale(den, ts[0]))
    logw = torch.zeros(b // particles, particles, dtype=torch.float64, device=known.device)
    with torch.no_grad():
        for t, s in zip(ts, ts[1:]):
            x0, _ = den(x, t)
            c_x, c_x0, std = posterior_coefficients(*den.coef(t), *den.coef(s))
            mean = c_x * x + c_x0 * x0
            if std > 0:
                d2 = (((path[s] - mean) * kept) ** 2).flatten(1).sum(1).double()
                logw = logw - 0.5 * d2.view_as(logw) / std**2
                x, mean, logw = _resample(logw, ess, generator, x, mean)
                x = mean + std * draw(x)
            else:
                x = mean
            x = torch.where(kept > 0.5, path[s], x)
        # The end: each particle an independent draw from its group's weights (multinomial, so
        # any one slot, e.g. the first, is itself a weighted draw; systematic resampling's slots are not).
        w = torch.softmax(logw, 1)
        dev = generator.device if generator is not None else w.device
        idx = torch.multinomial(w.to(dev), particles, replacement=True, generator=generator).to(w.device)
        return x[(idx + particles * torch.arange(idx.shape[0], device=w.device)[:, None]).reshape(-1)]


def _resample(logw: torch.Tensor, ess: float, generator, *tensors):
    """Systematic resampling of the groups (rows of ``logw``) whose effective sample size is
    below ``ess`` times their size; returns the tensors re-indexed and the new log-weights."""
    logw = logw - logw.max(1, keepdim=True).values
    w = logw.exp()
    w = w / w.sum(1, keepdim=True)
    g, k = w.shape
    low = (1.0 / (w**2).sum(1)) < ess * k
    if not bool(low.any()):
        return (*tensors, logw)
    dev = generator.device if generator is not None else w.device  # draw where the generator lives (CUDA or CPU)
    u = (torch.rand(g, 1, generator=generator, dtype=w.dtype, device=dev).to(w.device) + torch.arange(k, device=w.device)) / k
    idx = torch.searchsorted(w.cumsum(1).contiguous(), u.contiguous()).clamp(max=k - 1)
    idx = torch.where(low[:, None], idx, torch.arange(k, device=w.device).expand(g, k))
    flat = (idx + k * torch.arange(g, device=w.device)[:, None]).reshape(-1)
    out = [tt[flat] for tt in tensors]
    logw = torch.where(low[:, None], torch.zeros_like(logw), logw)
    return (*out, logw)
