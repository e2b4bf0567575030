"""A domain's training data: its items, ``collate`` (with ``mask`` and ``cond``) and its noise."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..contract.domain import Domain
from .report import _Checker, _Stop


def _first_dim(v: Any) -> int | None:
    return int(v.shape[0]) if isinstance(v, torch.Tensor) and v.ndim > 0 else None


def check_cond(ck: _Checker, cond: Any, b: int, where: str) -> None:
    if cond is None:
        return
    if isinstance(cond, torch.Tensor):
        ck.expect(_first_dim(cond) == b, f"{where}: cond has the batch dimension",
                  f"{where}: cond has shape {tuple(cond.shape)}, expected a first dimension of {b} (one condition per example)",
                  "give cond the batch dimension first")
    elif isinstance(cond, Mapping):
        bad = [k for k, v in cond.items() if isinstance(v, torch.Tensor) and _first_dim(v) not in (b,)]
        if bad:
            ck.warn(f"{where}: cond tensors {', '.join(map(str, bad))} do not start with the batch dimension {b}")


def check_mask(ck: _Checker, mask: Any, x_shape: tuple[int, ...], where: str) -> bool:
    if mask is None:
        return True
    if not isinstance(mask, torch.Tensor):
        ck.fail(f"{where}: mask is a {type(mask).__name__}, not a tensor", "make mask a float or bool tensor, 1 where an entry is real, 0 at padding")
        return False
    try:
        fits = torch.broadcast_shapes(tuple(mask.shape), x_shape) == torch.Size(x_shape)
    except RuntimeError:
        fits = False
    if not ck.expect(fits, f"{where}: mask broadcasts to x",
                     f"{where}: mask of shape {tuple(mask.shape)} does not broadcast to x's shape {x_shape}",
                     "shape the mask like x, or with size-1 dimensions where x's entries share it (e.g. [B, N, 1] for x [B, N, 3])"):
        return False
    m = mask.float()
    return ck.expect(bool(((m == 0) | (m == 1)).all()), f"{where}: mask is 0/1",
                     f"{where}: mask has values other than 0 and 1", "use 1 for real entries and 0 for padding")


def check_items(ck: _Checker, domain: Domain) -> list[Mapping]:
    """A few training items: dicts with a finite floating ``x`` and a fitting ``mask``."""
    with ck.running("train_dataset()"):
        ds = domain.train_dataset()
    try:
        n = len(ds)
    except TypeError:
        ck.fail("train_dataset() has no len()", "return a map-style torch Dataset (with __len__ and __getitem__)")
        raise _Stop() from None
    if not ck.expect(n > 0, "training set is not empty", "train_dataset() is empty", "check setup() and the options"):
        raise _Stop()
    idx = sorted({0, n // 3, (2 * n) // 3, n - 1})
    with ck.running("train_dataset()[i]"):
        items = [ds[i] for i in idx]
    for i, item in zip(idx, items):
        where = f"train_dataset()[{i}]"
        if not isinstance(item, Mapping):
            ck.fail(f"{where} is a {type(item).__name__}, not a dict", 'return {"x": tensor, "cond": ..., "mask": ...} per example')
            raise _Stop()
        x = item.get("x")
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            ck.fail(f"{where}['x'] is {type(x).__name__ if not isinstance(x, torch.Tensor) else x.dtype}, not a floating-point tensor",
                    "put the example, normalised, as a float tensor under 'x'")
            raise _Stop()
        ck.expect(bool(torch.isfinite(x).all()), f"{where}: x is finite", f"{where}['x'] has NaN or inf entries", "clean or normalise the data")
        if item.get("mask") is not None:
            check_mask(ck, item["mask"], tuple(x.shape), where)
    return items


def check_collate(ck: _Checker, domain: Domain, items: list[Mapping]) -> tuple[Mapping, torch.Tensor]:
    """``collate(items)``: a batch dict with ``x`` [B, ...] and, for items of different sizes, a
    mask. Returns the batch and the mask of the real entries, shaped like ``x``."""
    with ck.running("collate(items)", "collate must stack the items (pad variable-size ones and add a mask)"):
        batch = domain.collate(list(items))
    if not isinstance(batch, Mapping) or not isinstance(batch.get("x"), torch.Tensor):
        ck.fail(f"collate() returned {type(batch).__name__} without a tensor 'x'", 'return a dict {"x": [B, ...], "cond": ..., "mask": ...}')
        raise _Stop()
    x, k = batch["x"], len(items)
    ck.expect(x.ndim >= 1 and x.shape[0] == k and x.is_floating_point(), "collate gives x [B, ...] float",
              f"collate() of {k} items gave x of shape {tuple(x.shape)} and dtype {x.dtype}", f"stack the items: x must be a float tensor [{k}, ...]")
    mask = batch.get("mask")
    shapes = {tuple(it["x"].shape) for it in items}
    if len(shapes) > 1 and mask is None:
        ck.fail(f"training items have different shapes ({sorted(shapes)[:3]}) but collate() adds no mask",
                "pad the items to a common shape in collate() and add batch['mask'] (1 real, 0 padding)")
    masked = check_mask(ck, mask, tuple(x.shape), "collate()")
    check_cond(ck, batch.get("cond"), k, "collate()")
    return batch, (mask.to(x.dtype).expand_as(x) if (mask is not None and masked) else torch.ones_like(x))


def check_noise(ck: _Checker, domain: Domain, batch: Mapping, m: torch.Tensor) -> None:
    """``noise(x, batch)``: x's shape, dtype and device, reproducible with its generator, zero
    at padding (``m`` == 0), about standard normal elsewhere."""
    x = batch["x"]
    with ck.running("noise(x, batch)", "noise(like, batch, generator=None) must return a tensor shaped like `like`"):
        eps = domain.noise(x, batch, generator=torch.Generator().manual_seed(0))
        eps2 = domain.noise(x, batch, generator=torch.Generator().manual_seed(0))
        eps3 = domain.noise(x, batch, generator=torch.Generator().manual_seed(1))
        domain.noise(x, batch)  # no generator
        eps64 = domain.noise(x.double(), batch, generator=torch.Generator().manual_seed(0))
    if not isinstance(eps, torch.Tensor) or eps.shape != x.shape or eps.dtype != x.dtype or eps.device != x.device:
        got = f"shape {tuple(eps.shape)}, {eps.dtype}" if isinstance(eps, torch.Tensor) else type(eps).__name__
        ck.fail(f"noise() returned {got} for x of shape {tuple(x.shape)}, {x.dtype}", "draw noise with like's shape, dtype and device")
        raise _Stop()
    ck.ok("noise has x's shape, dtype and device")
    ck.expect(isinstance(eps64, torch.Tensor) and eps64.dtype == torch.float64, "noise follows like's dtype (float64)",
              f"noise() of a float64 `like` returned {getattr(eps64, 'dtype', type(eps64).__name__)}", "use dtype=like.dtype")
    ck.expect(bool(torch.isfinite(eps).all()), "noise is finite", "noise() has NaN or inf entries")
    ck.expect(torch.equal(eps, eps2) and not torch.equal(eps, eps3), "noise is reproducible with its generator",
              "noise() ignores its `generator` argument, so `diffcore sample --seed` cannot reproduce samples",
              "draw with torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)")
    pad = m == 0
    if bool(pad.any()):
        worst = float(eps[pad].abs().max())
        ck.expect(worst == 0.0, "noise is zero at padding",
                  f"noise() is not zero at padding (mask == 0): max |noise| there is {worst:.3g}",
                  "multiply the noise by batch['mask'] (the default Domain.noise does)")
    _check_noise_statistics(ck, domain, batch, m != 0)


def _check_noise_statistics(ck: _Checker, domain: Domain, batch: Mapping, real: torch.Tensor) -> None:
    per = int(real.sum())
    if per == 0:
        return
    reps = max(1, min(500, math.ceil(20000 / per)))
    with ck.running("noise(x, batch) repeated"):
        draws = torch.stack([domain.noise(batch["x"], batch, generator=torch.Generator().manual_seed(100 + r)) for r in range(reps)])
    vals = draws[:, real].double().flatten()
    N = vals.numel()
    mean, var = float(vals.mean()), float(vals.var())
    ck.expect(abs(mean) <= 5.0 / math.sqrt(N), "noise has mean 0 where mask = 1",
              f"noise() has mean {mean:.4f} over {N} real entries (|mean| should be below {5 / math.sqrt(N):.4f})",
              "draw standard-normal noise (mean 0)")
    hi, lo = 1.0 + 5.0 * math.sqrt(2.0 / N), 0.5
    ck.expect(lo <= var <= hi, "noise has variance about 1 where mask = 1",
              f"noise() has variance {var:.4f} over {N} real entries; expected 1 (or a little less for a projection such as zero centre of mass)",
              "draw standard-normal noise (variance 1), e.g. torch.randn")
