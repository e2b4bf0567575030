"""A fixed suite of exact targets, split into a *tuning* half and a *held-out* half.

Sampler defaults (step counts, spacings, solver orders, options) are chosen on :data:`TUNING`
and reported on :data:`HELD_OUT`, so that a reported score is not one the defaults were fitted
to. Every target is an exact one from :mod:`diffcore.testing.targets` (its noised marginals,
score and denoiser are closed-form under any schedule), built deterministically from its own
fixed seed. Names read ``kind-<dim>d-<modes>``; for a ``product`` the last number is the modes
per coordinate (M^D modes jointly). "aniso" means diagonal, non-isotropic covariances.

=============== ===== ================= ======================= ============ ==========
name            dim   modes             stds (drawn in)         means        weights
=============== ===== ================= ======================= ============ ==========
*tuning*
mixture-2d-3    2     3, isotropic      0.15 - 0.25             within +-1   .5/.3/.2
aniso-2d-6      2     6                 0.02 - 1.5, diagonal    within +-4   equal
unbalanced-8d-3 8     3                 0.1 - 1, diagonal       within +-5   .9/.05/.05
aniso-16d-16    16    16                0.05 - 2, diagonal      within +-5   random
product-32d-2   32    2 a coord, 2^32   0.05 - 0.5              +-0.5 to 3   .2 - .8
iso-64d-8       64    8, isotropic      0.3 - 1                 within +-2   random
*held out*
ring-2d-8       2     8, isotropic      0.03                    radius 5     geometric
unbalanced-2d-3 2     3                 0.05 - 1, diagonal      up to +-4    .9/.05/.05
aniso-4d-20     4     20                0.02 - 1, diagonal      within +-5   random
product-8d-3    8     3 a coord, 3^8    0.02 - 0.3              within +-4   .8/.1/.1
aniso-32d-12    32    12                0.02 - 2, diagonal      within +-5   random
product-64d-2   64    2 a coord, 2^64   0.05 - 0.5              +-0.5 to 3   .2 - .8
=============== ===== ================= ======================= ============ ==========

("random" weights: uniform in [0.2, 1], normalised; "geometric": 0.8^k; :func:`describe` gives
the drawn values.)

Why this split: ``mixture-2d-3`` is ``GaussianMixture.default()``, on which the old defaults
were tuned, so it must sit in TUNING. Past that, the halves are matched property by property so
that neither is the easy one: each has two 2-D targets, one of 32-D and one of 64-D, one
product, anisotropic covariances with stds down to 0.02-0.05 and up to 1.5-2 (so data far from
the unit scale a VP prior assumes), means out to about +-5, a 0.9/0.05/0.05 mixture, and a
target with 16-20 modes. The held-out half has, on purpose, the kinds the tuning half lacks:
modes on a ring, minor modes far from a wide major one, 3-mode coordinates in the product.

:func:`z_score` puts a sample on the issue's scale: z = (energy distance to a fresh target
sample of the same size - mean of the null) / std of the null, the null being the energy
distances between :data:`NULL_PAIRS` independent pairs of target samples of that size
(computed once per target and size). z <= ~2: indistinguishable from the target. Measured
at n = 1000 on the cosine schedule, exact-predictor DDIM gives z within [-1.8, 1.6] at 200 and
25 steps on every target, 1.7 - 15 at 10 steps and 14 - 150 at 5. Caveat: the energy distance
weighs large-scale structure; the spread of a 0.02-wide mode in 32-D moves it little, so a
check aimed at fine structure should add its own statistic.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import torch

from .targets import GaussianMixture, ProductMixture, energy_distance

F64 = torch.float64
NULL_PAIRS = 30
_NULL_SEED = 7_919  # the null's own stream, apart from any reference sample's


def _uniform(g, shape, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=F64)


def _log_uniform(g, shape, lo, hi):
    return torch.exp(_uniform(g, shape, math.log(lo), math.log(hi)))


def _mixture(seed: int, dim: int, k: int, mean_scale: float, stds: tuple[float, float], *, iso=False, weights=None):
    """k components, means uniform in [-mean_scale, mean_scale]^dim, stds log-uniform in
    ``stds`` (one per component if ``iso``, else one per component and dimension), weights
    given or random (uniform in [0.2, 1], normalised)."""
    g = torch.Generator().manual_seed(seed)
    means = _uniform(g, (k, dim), -mean_scale, mean_scale)
    s = _log_uniform(g, (k,) if iso else (k, dim), *stds)
    w = _uniform(g, (k,), 0.2, 1.0) if weights is None else weights
    return GaussianMixture(means, s, w)


def _product(seed: int, dim: int, *, lo=0.5, hi=3.0, stds=(0.05, 0.5)) -> ProductMixture:
    """Two modes per coordinate at -a and +b (a, b uniform in [lo, hi]), weights w / 1 - w."""
    g = torch.Generator().manual_seed(seed)
    means = torch.stack([-_uniform(g, dim, lo, hi), _uniform(g, dim, lo, hi)], 1)
    w = _uniform(g, dim, 0.2, 0.8)
    return ProductMixture(means, _log_uniform(g, (dim, 2), *stds), torch.stack([w, 1 - w], 1))


def _ring() -> GaussianMixture:
    angle = torch.arange(8, dtype=F64) * (2 * math.pi / 8)
    return GaussianMixture(5.0 * torch.stack([angle.cos(), angle.sin()], 1), 0.03, 0.8 ** torch.arange(8, dtype=F64))


def _unbalanced_2d() -> GaussianMixture:
    return GaussianMixture([[0.0, 0.0], [4.0, 3.0], [-3.5, 4.0]], [[1.0, 0.4], [0.05, 0.3], [0.3, 0.05]], [0.9, 0.05, 0.05])


def _product_3() -> ProductMixture:
    g = torch.Generator().manual_seed(105)
    means = torch.sort(_uniform(g, (8, 3), -4.0, 4.0), dim=1).values
    w = torch.tensor([0.8, 0.1, 0.1], dtype=F64)[torch.stack([torch.randperm(3, generator=g) for _ in range(8)])]
    return ProductMixture(means, _log_uniform(g, (8, 3), 0.02, 0.3), w)


TARGETS: dict[str, Callable[[], GaussianMixture | ProductMixture]] = {
    # tuning
    "mixture-2d-3": GaussianMixture.default,
    "aniso-2d-6": lambda: _mixture(1, 2, 6, 4.0, (0.02, 1.5), weights=torch.ones(6, dtype=F64)),
    "unbalanced-8d-3": lambda: _mixture(2, 8, 3, 5.0, (0.1, 1.0), weights=[0.9, 0.05, 0.05]),
    "aniso-16d-16": lambda: _mixture(3, 16, 16, 5.0, (0.05, 2.0)),
    "product-32d-2": lambda: _product(4, 32),
    "iso-64d-8": lambda: _mixture(5, 64, 8, 2.0, (0.3, 1.0), iso=True),
    # held out
    "ring-2d-8": _ring,
    "unbalanced-2d-3": _unbalanced_2d,
    "aniso-4d-20": lambda: _mixture(103, 4, 20, 5.0, (0.02, 1.0)),
    "product-8d-3": _product_3,
    "aniso-32d-12": lambda: _mixture(104, 32, 12, 5.0, (0.02, 2.0)),
    "product-64d-2": lambda: _product(106, 64),
}
TUNING: list[str] = ["mixture-2d-3", "aniso-2d-6", "unbalanced-8d-3", "aniso-16d-16", "product-32d-2", "iso-64d-8"]
HELD_OUT: list[str] = ["ring-2d-8", "unbalanced-2d-3", "aniso-4d-20", "product-8d-3", "aniso-32d-12", "product-64d-2"]

_BUILT: dict[str, GaussianMixture | ProductMixture] = {}
_NULL: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def get(name: str) -> GaussianMixture | ProductMixture:
    """The suite's target ``name`` (built once, then shared: treat it as read-only)."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; valid names: {', '.join(TARGETS)}")
    if name not in _BUILT:
        _BUILT[name] = TARGETS[name]()
    return _BUILT[name]


def describe(name: str) -> dict:
    """The properties the split is balanced on: dim, modes, mean and std ranges, weights."""
    t = get(name)
    return {
        "name": name, "split": "tuning" if name in TUNING else "held-out" if name in HELD_OUT else None,
        "kind": type(t).__name__, "dim": t.dim, "modes": t.modes, "anisotropic": getattr(t, "diagonal", False),
        "max_abs_mean": float(t.means.abs().max()), "std_min": float(t.stds.min()), "std_max": float(t.stds.max()),
        "weight_max": float(t.weights.max()),
    }


def null_stats(target, n: int, pairs: int = NULL_PAIRS) -> tuple[float, float]:
    """Mean and std of the energy distance between two independent target samples of size
    ``n``, over ``pairs`` pairs (cached per target and size)."""
    t = get(target) if isinstance(target, str) else target
    cache = _NULL.setdefault(t, {})
    if (n, pairs) not in cache:
        d = t.null_distances(n, repeats=pairs, seed=_NULL_SEED)
        cache[(n, pairs)] = (float(d.mean()), float(d.std()))
    return cache[(n, pairs)]


def z_score(samples: torch.Tensor, target, n: int | None = None, seed: int = 0) -> float:
    """(energy distance between ``samples`` and a fresh target sample of the same size, drawn
    with ``seed`` - null mean) / null std; ``target`` is a suite name or a target. z <= ~2:
    indistinguishable from the target at this sample size."""
    t = get(target) if isinstance(target, str) else target
    n = samples.shape[0] if n is None else n
    if samples.shape[0] != n or samples.shape[1:] != (t.dim,):
        raise ValueError(f"samples of shape {tuple(samples.shape)}: expected [{n}, {t.dim}]")
    mean, std = null_stats(t, n)
    d = float(energy_distance(samples, t.sample(n, torch.Generator().manual_seed(seed))))
    return (d - mean) / std
