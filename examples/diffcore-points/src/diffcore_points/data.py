"""The three 2-D target distributions, generated offline and deterministically with numpy.

Each generator returns ``(points [n, 2] float64, labels [n] int64 or None)`` in the data's own
units; the same ``(name, n, noise, seed)`` always gives the same points. Labels are the
component a point was drawn from (which moon, which Gaussian), balanced exactly: a
class-conditional model can then be asked for one component with ``--class``.
"""

from __future__ import annotations

import math

import numpy as np

DATASETS = ("two-moons", "swiss-roll", "8-gaussians")

#: default noise std per data set (in the data's units), used when ``data.noise`` is null
DEFAULT_NOISE = {"two-moons": 0.05, "swiss-roll": 0.1, "8-gaussians": 0.1}

#: class names per data set (index = class id); ``None``: unlabelled
LABELS: dict[str, list[str] | None] = {
    "two-moons": ["upper", "lower"],
    "swiss-roll": None,
    "8-gaussians": ["E", "NE", "N", "NW", "W", "SW", "S", "SE"],
}


def _balanced(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """n labels in 0..k-1, as equal in number as n allows, in random order."""
    y = np.arange(n) % k
    rng.shuffle(y)
    return y


def two_moons(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles (as scikit-learn's ``make_moons``, with the angle drawn
    uniformly instead of on a grid, so that fresh samples come from the same law)."""
    y = _balanced(n, 2, rng)
    theta = rng.uniform(0.0, math.pi, n)
    upper = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    lower = np.stack([1.0 - np.cos(theta), 0.5 - np.sin(theta)], axis=1)
    x = np.where(y[:, None] == 0, upper, lower)
    return x + noise * rng.standard_normal((n, 2)), y


def swiss_roll(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, None]:
    """The 2-D swiss roll: t (cos t, sin t) / 5 with t uniform in [1.5 pi, 4.5 pi]."""
    t = 1.5 * math.pi * (1.0 + 2.0 * rng.uniform(0.0, 1.0, n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / 5.0
    return x + noise * rng.standard_normal((n, 2)), None


def eight_gaussians(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Eight Gaussians of std ``noise`` on the circle of radius 2 (Grathwohl et al. 2019,
    FFJORD's toy data), component k at angle k pi / 4."""
    y = _balanced(n, 8, rng)
    angle = y * math.pi / 4.0
    centres = 2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + noise * rng.standard_normal((n, 2)), y


_GENERATORS = {"two-moons": two_moons, "swiss-roll": swiss_roll, "8-gaussians": eight_gaussians}


def generate(name: str, n: int, noise: float | None, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` points of data set ``name``; ``noise=None`` takes :data:`DEFAULT_NOISE`."""
    if name not in _GENERATORS:
        raise ValueError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
    rng = np.random.default_rng(seed)
    return _GENERATORS[name](n, DEFAULT_NOISE[name] if noise is None else noise, rng)


def conditional(name: str, noise: float | None, given: int, value: float, n: int, seed: int,
                label: int | None = None, pool: int = 400_000) -> np.ndarray:
    """``n`` exact draws of the other coordinate of a point of data set ``name`` whose
    coordinate ``given`` (0: x, 1: y) equals ``value`` (and whose class is ``label``, if given):
    the reference for inpainting. A point is a noise-free point c plus isotropic Gaussian noise
    of std s, so p(c | coordinate = value) weighs c by N(value; c[given], s^2), and the other
    coordinate is then c[other] + s z: we draw c from ``pool`` noise-free points with those
    weights, and add the noise."""
    s = DEFAULT_NOISE[name] if noise is None else noise
    if s <= 0:
        raise ValueError("the conditional of noise-free data is degenerate; need noise > 0")
    clean, labels = generate(name, pool, 0.0, seed)
    if label is not None:
        clean = clean[labels == label]
    logw = -0.5 * ((clean[:, given] - value) / s) ** 2
    w = np.exp(logw - logw.max())
    rng = np.random.default_rng(seed + 1)
    pick = rng.choice(len(clean), n, p=w / w.sum())
    return clean[pick, 1 - given] + s * rng.standard_normal(n)
