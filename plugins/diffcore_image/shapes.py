"""``shapes64``: an embedded, synthesized 64x64 colour data set (``data.dataset: shapes64``).

Each image holds one shape (circle, square, triangle or five-pointed star) in one of six
saturated colours (red, green, blue, yellow, magenta, cyan), at a random position, size and
rotation, on a textured, muted background: a low-contrast linear gradient, stripes at a
random angle and frequency, or smooth blotchy noise, in a desaturated tint, plus faint
per-pixel grain. The class is the (colour, shape) pair, ``class_id = shape * 6 + colour``,
named ``"red-circle"``, ``"green-circle"``, ..., ``"cyan-star"`` (24 classes, exactly balanced);
:func:`decode` recovers the shape and colour ids from class ids.

Shapes are drawn with PIL at 4x (256x256) and box-filtered down to 64x64, so edges are
antialiased; the shape colour is jittered a little per image (brightness and each channel),
so colour is a small region of RGB space, not one value. Everything is drawn from one
``numpy`` generator seeded by ``seed``: the same ``(n, seed)`` gives the same images.
6,000 images take 2 to 4 s on one CPU core and are kept in memory (:func:`render_shapes`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

SHAPES = ("circle", "square", "triangle", "star")
COLOURS = {
    "red": (0.90, 0.12, 0.12),
    "green": (0.12, 0.72, 0.18),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "magenta": (0.88, 0.15, 0.85),
    "cyan": (0.10, 0.85, 0.90),
}
COLOUR_NAMES = tuple(COLOURS)
LABELS = [f"{c}-{s}" for s in SHAPES for c in COLOUR_NAMES]  # class_id = shape * len(COLOURS) + colour
NUM_CLASSES = len(LABELS)
RESOLUTION = 64
SUPERSAMPLE = 4
NUM_IMAGES = 6000  # 250 per class; data.val_fraction 0.2 holds out 1,200 of them
SEED = 0
TEXTURES = ("gradient", "stripes", "noise")
# the circumradius (at 64x64) is drawn in this range, then scaled per shape so that the
# shapes cover comparable areas
RADIUS = (9.0, 19.0)
_SHAPE_SCALE = {"circle": 0.85, "square": 0.95, "triangle": 1.15, "star": 1.15}
_STAR_INNER = 0.45


def class_id(shape: int | str, colour: int | str) -> int:
    """The class id of ``shape`` and ``colour`` (ids or names)."""
    s = SHAPES.index(shape) if isinstance(shape, str) else int(shape)
    c = COLOUR_NAMES.index(colour) if isinstance(colour, str) else int(colour)
    return s * len(COLOURS) + c


def decode(y):
    """``(shape_id, colour_id)`` of class ids ``y`` (an int, numpy array or tensor)."""
    return y // len(COLOURS), y % len(COLOURS)


def _vertices(shape: str, cx: float, cy: float, r: float, theta: float) -> list[tuple[float, float]]:
    if shape == "square":
        angles, radii = [theta + k * math.pi / 2 + math.pi / 4 for k in range(4)], [r] * 4
    elif shape == "triangle":
        angles, radii = [theta + k * 2 * math.pi / 3 - math.pi / 2 for k in range(3)], [r] * 3
    else:  # star: ten vertices alternating outer and inner radius
        angles = [theta + k * math.pi / 5 - math.pi / 2 for k in range(10)]
        radii = [r if k % 2 == 0 else r * _STAR_INNER for k in range(10)]
    return [(cx + q * math.cos(a), cy + q * math.sin(a)) for a, q in zip(angles, radii)]


def shape_mask(shape: str, cx: float, cy: float, r: float, theta: float, size: int = RESOLUTION) -> np.ndarray:
    """Coverage in [0, 1], ``[size, size]`` float32, of a shape centred at (cx, cy) with
    circumradius r (pixels at ``size``) rotated by theta: drawn at 4x, box-filtered down."""
    from PIL import Image, ImageDraw

    k = SUPERSAMPLE
    img = Image.new("L", (size * k, size * k), 0)
    draw = ImageDraw.Draw(img)
    # pixel centres: a pixel i covers [i, i + 1) at 1x, so scale coordinates by k
    X, Y, R = cx * k, cy * k, r * k
    if shape == "circle":
        draw.ellipse((X - R, Y - R, X + R, Y + R), fill=255)
    else:
        draw.polygon(_vertices(shape, X, Y, R, theta), fill=255)
    return np.asarray(img.reduce(k), dtype=np.float32) / 255.0  # reduce: the mean of each k x k box


def _smooth_noise(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """[n, size, size] smooth noise in about [-1, 1]: 8x8 Gaussian noise upsampled bilinearly."""
    low = torch.from_numpy(rng.standard_normal((n, 1, 8, 8)).astype(np.float32))
    up = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    up = up / up.flatten(1).std(dim=1).clamp_min(1e-6)[:, None, None]
    return (up / 2.0).clamp(-1, 1).numpy()


def _backgrounds(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """[n, size, size, 3] muted, low-contrast textured backgrounds in [0, 1]."""
    kind = rng.integers(0, len(TEXTURES), n)
    angle = rng.uniform(0, 2 * math.pi, n)
    freq = rng.uniform(2.0, 6.0, n)  # stripes: cycles across the image
    phase = rng.uniform(0, 2 * math.pi, n)
    level = rng.uniform(0.30, 0.62, n)  # grey level of the background
    amp = rng.uniform(0.06, 0.14, n)  # texture contrast
    tint = rng.normal(0, 1, (n, 3))
    tint = 0.06 * tint / np.linalg.norm(tint, axis=1, keepdims=True)  # a faint colour cast
    tint2 = 1.0 + rng.uniform(-0.25, 0.25, (n, 3))  # the texture's own slight colour
    noise = _smooth_noise(rng, n, size)
    grain = rng.standard_normal((n, size, size, 3), dtype=np.float32)
    grain *= 0.015

    u = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1  # [-1, 1]
    xx, yy = np.meshgrid(u, u, indexing="xy")
    f32 = lambda v: v.astype(np.float32)[:, None, None]  # noqa: E731
    t = noise  # kind 2; kinds 0 and 1 below, each computed on its own images only
    for k in (0, 1):
        sel = kind == k
        proj = f32(np.cos(angle[sel])) * xx + f32(np.sin(angle[sel])) * yy  # [m, size, size]
        t[sel] = proj / math.sqrt(2) if k == 0 else np.sin(f32(math.pi * freq[sel]) * proj + f32(phase[sel]))
    base = (level[:, None] + tint).astype(np.float32)  # [n, 3]
    grain += base[:, None, None, :]
    grain += (amp[:, None] * tint2).astype(np.float32)[:, None, None, :] * t[..., None]
    return np.clip(grain, 0.0, 1.0, out=grain)


def _render(n: int, seed: int, size: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % NUM_CLASSES)  # exactly balanced (up to n mod 24), shuffled
    shape_ids, colour_ids = decode(y)
    scale = size / RESOLUTION
    r0 = rng.uniform(*RADIUS, n) * scale
    theta = rng.uniform(0, 2 * math.pi, n)
    u = rng.uniform(0, 1, (n, 2))
    bright = rng.uniform(0.85, 1.05, n)
    jitter = rng.uniform(-0.05, 0.05, (n, 3))
    palette = np.array(list(COLOURS.values()), dtype=np.float32)
    colour = (palette[colour_ids] * bright[:, None] + jitter).clip(0, 1).astype(np.float32)

    out = np.empty((n, 3, size, size), dtype=np.float32)
    cxs, cys, rs = np.empty(n), np.empty(n), np.empty(n)
    for start in range(0, n, 1000):  # backgrounds in chunks: bounded memory
        stop = min(n, start + 1000)
        bg = _backgrounds(rng, stop - start, size)
        a = np.empty((stop - start, size, size, 1), dtype=np.float32)
        for j in range(start, stop):
            name = SHAPES[shape_ids[j]]
            r = r0[j] * _SHAPE_SCALE[name]
            margin = r + 1.0
            cx, cy = margin + u[j] * (size - 2 * margin)
            cxs[j], cys[j], rs[j] = cx, cy, r
            a[j - start, ..., 0] = shape_mask(name, cx, cy, r, theta[j], size)
        colour_minus_bg = colour[start:stop, None, None, :] - bg
        colour_minus_bg *= a
        bg += colour_minus_bg  # bg (1 - a) + colour a
        bg *= 2.0
        bg -= 1.0  # [0, 1] -> [-1, 1]
        out[start:stop] = bg.transpose(0, 3, 1, 2)
    params = {"cx": cxs, "cy": cys, "radius": rs, "theta": theta, "colour_rgb": colour}
    return out, y.astype(np.int64), params


@lru_cache(maxsize=2)
def _cached(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, _ = _render(n, seed)
    return torch.from_numpy(x).clamp_(-1.0, 1.0), torch.from_numpy(y)


def render_shapes(n: int = NUM_IMAGES, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` renders: images ``[n, 3, 64, 64]`` float32 in [-1, 1] and class ids ``[n]``
    (names in :data:`LABELS`). Deterministic in ``(n, seed)``; the last two sets asked for are
    kept in memory (treat the tensors as read-only)."""
    return _cached(int(n), int(seed))

