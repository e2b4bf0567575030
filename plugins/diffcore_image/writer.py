"""Writing images: one PNG per sample plus a grid of all of them (``samples.png``).

Sample files are named ``<index>_<label>.png`` (``00012_7.png``: sample 12, asked for class
"7") or ``<index>.png`` without a class. Pixels are mapped from [-1, 1] to 0..255. The grid
is upscaled (nearest neighbour) so that small images stay visible: each cell is at least
64 pixels wide.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch

GRID_NAME = "samples.png"
MIN_CELL = 64  # grid cells are upscaled to at least this many pixels


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``[B, C, H, W]`` in [-1, 1] -> ``[B, H, W, C]`` uint8."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _pil(a: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(a[..., 0] if a.shape[-1] == 1 else a))  # mode L or RGB


def safe_label(label: str) -> str:
    """A class name usable in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(label)).strip("-.") or "class"


def grid_columns(n: int, classes: int | None = None) -> int:
    """Columns of a near-square grid of ``n`` images: ceil(sqrt(n)), or the multiple of
    ``classes`` closest to it when that keeps rows and columns within a factor of 2 (samples
    that cycle through the classes then have one class per column: 100 digits, 10 x 10)."""
    square = max(1, math.ceil(math.sqrt(n)))
    if classes and classes > 1:
        cols = max(1, round(square / classes)) * classes
        rows = math.ceil(n / cols)
        if max(cols, rows) <= 2 * min(cols, rows):
            return cols
    return square


def grid(images: np.ndarray, ncols: int | None = None, pad: int = 1, min_cell: int = MIN_CELL) -> np.ndarray:
    """``[B, H, W, C]`` uint8 -> one ``[rows*(H+pad)+pad, cols*(W+pad)+pad, C]`` image (cells
    upscaled to at least ``min_cell`` pixels)."""
    b, h, w, c = images.shape
    ncols = ncols or max(1, math.ceil(math.sqrt(b)))
    nrows = max(1, math.ceil(b / ncols))
    scale = max(1, math.ceil(min_cell / max(h, w)))
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 128, np.uint8)
    for i in range(b):
        r, col = divmod(i, ncols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = images[i]
    return out


def write_grid(x: torch.Tensor, path: Path, ncols: int | None = None) -> Path:
    """A grid PNG of the images ``x`` ``[B, C, H, W]`` in [-1, 1]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _pil(grid(to_uint8(x), ncols)).save(path)
    return path


def write_images(
    x: torch.Tensor,
    out_dir: Path,
    *,
    indices: list[int] | None = None,
    labels: list[str | None] | None = None,
    grid_name: str | None = GRID_NAME,
    ncols: int | None = None,
) -> list[Path]:
    """One PNG per image of ``x`` and (``grid_name``) a grid of them; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arr = to_uint8(x)
    indices = indices if indices is not None else list(range(len(arr)))
    paths = []
    width = max(5, len(str(max(indices, default=0))))
    for i, a in enumerate(arr):
        name = f"{indices[i]:0{width}d}"
        if labels is not None and labels[i] is not None:
            name += f"_{safe_label(labels[i])}"
        p = out_dir / f"{name}.png"
        _pil(a).save(p)
        paths.append(p)
    if grid_name and len(arr):
        paths.append(write_grid(x, out_dir / grid_name, ncols))
    return paths
