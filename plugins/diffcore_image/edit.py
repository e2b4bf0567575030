"""Editing images (``diffcore edit``): inputs, the region to generate, and the before/after picture.

An input is a PNG/JPEG file, loaded exactly like the images of a training folder
(:mod:`diffcore_image.data`): converted to grayscale or RGB as the run's ``channels`` say,
centre-cropped to a square and resized (bicubic) to the run's resolution, then mapped to
[-1, 1]. An input already at the run's resolution is not resampled, so its kept pixels come
back byte for byte.

The region to *generate* is given by exactly one of (the rest of the image is kept):

``--mask FILE``
    a black-and-white PNG: **white pixels are generated, black pixels are kept** (the
    convention of diffusers' and LaMa's inpainting masks). Either the input's own size (it is
    then centre-cropped like the input) or the data resolution; it is resized with
    nearest-neighbour to the data resolution. It must be binary: every pixel darker than 25%
    or brighter than 75% grey (JPEG noise is tolerated), thresholded at 50%.
``--box x0,y0,x1,y1``
    a rectangle in pixels of the data resolution, x to the right, y down, corners
    ``(x0, y0)`` included and ``(x1, y1)`` excluded (PIL's box convention):
    ``0 <= x0 < x1 <= R`` and ``0 <= y0 < y1 <= R``.
``--half left|right|top|bottom``
    that half (split at ``R // 2``) is generated, the other kept.

None of them keeps nothing: the mode for SDEdit (``--mode sdedit``) and inversion
(``--mode invert``), which restyle the whole input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from diffcore import Options, UserError, cycle_classes

from .data import _to_array
from .writer import MIN_CELL, grid, safe_label, to_uint8, write_images

BEFORE_AFTER = "before_after.png"
MAX_COLUMNS = 32        # the before/after picture shows at most this many edits
GREY_LOW, GREY_HIGH = 0.25, 0.75  # a mask pixel strictly between these is neither black nor white
MARK = (1.0, -0.6, -0.6)  # the colour (in [-1, 1]) blended over the generated region in the picture


class ImageEditOptions(Options):
    """The region of the input to generate (the rest is kept); at most one of the three."""

    mask: Path | None = Field(
        None,
        description="Mask PNG: white = generated, black = kept; the input's size or the data resolution.",
    )
    box: str | None = Field(
        None, description="x0,y0,x1,y1 in pixels of the data resolution (x1, y1 excluded): this box is generated."
    )
    half: Literal["left", "right", "top", "bottom"] | None = Field(
        None, description="left, right, top or bottom: this half is generated, the other kept."
    )

    @field_validator("box")
    @classmethod
    def _four_integers(cls, v: str | None) -> str | None:
        if v is not None:
            parse_box(v)
        return v


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` -> four integers (ValueError with the expected form otherwise)."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4 or not all(p.lstrip("-").isdigit() for p in parts):
        raise ValueError(f"{text!r} is not four integers x0,y0,x1,y1 (e.g. --box 0,0,8,16)")
    x0, y0, x1, y1 = (int(p) for p in parts)
    return x0, y0, x1, y1


# ------------------------------------------------------------------ loading
def _open(path: Path, flag: str):
    """The decoded PIL image of ``path``, or UserError naming ``flag`` and the file."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise UserError(f"{flag} {path}: no such file; give the path of a PNG or JPEG image")
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{flag} {path}: not a readable PNG/JPEG image ({e.__class__.__name__}); give a PNG or JPEG file") from None


def load_input(path: str | Path, resolution: int, channels: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """The image file ``path`` as ``[C, R, R]`` in [-1, 1] (the folder data's loading) and its
    size (width, height) before cropping."""
    path = Path(path).expanduser()
    img = _open(path, "--input")
    try:
        a = _to_array(img, resolution, channels)
    except (ValueError, OSError) as e:
        kind = "RGB" if channels == 3 else "grayscale"
        raise UserError(
            f"--input {path}: its pixels (mode {img.mode}) cannot be converted to {kind} ({e}); "
            f"save it as an 8-bit {kind} or RGB PNG"
        ) from None
    return torch.from_numpy(np.ascontiguousarray(a)), img.size


def load_mask(path: str | Path, resolution: int, input_size: tuple[int, int], input_name: str) -> torch.Tensor:
    """``keep`` ``[1, R, R]`` (1 = kept) from a mask PNG whose white pixels are generated."""
    from PIL import Image

    path = Path(path).expanduser()
    img = _open(path, "--mask")
    w, h = img.size
    if (w, h) == tuple(input_size) and (w, h) != (resolution, resolution):
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))  # the input's own centre crop
    elif (w, h) != (resolution, resolution):
        iw, ih = input_size
        raise UserError(
            f"--mask {path} is {w}x{h} pixels; it must be the size of the input {input_name} ({iw}x{ih}) "
            f"or the data resolution ({resolution}x{resolution})"
        )
    try:
        a = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except (ValueError, OSError) as e:
        raise UserError(f"--mask {path}: its pixels (mode {img.mode}) cannot be read as grey levels ({e}); save it as a black-and-white PNG") from None
    grey = (a > GREY_LOW) & (a < GREY_HIGH)
    if grey.any():
        y, x = (int(v) for v in np.argwhere(grey)[0])
        raise UserError(
            f"--mask {path} is not black and white: {int(grey.sum())} of {a.size} pixels are grey "
            f"(between {GREY_LOW:.0%} and {GREY_HIGH:.0%} brightness), the first at x={x}, y={y}; "
            "use white for the pixels to generate and black for those to keep"
        )
    white = Image.fromarray(((a >= 0.5) * 255).astype(np.uint8))
    if white.size != (resolution, resolution):
        white = white.resize((resolution, resolution), Image.Resampling.NEAREST)
    generate = torch.from_numpy(np.asarray(white) >= 128)
    return (~generate).float()[None]


def region_keep(options: ImageEditOptions | None, resolution: int) -> torch.Tensor | None:
    """``keep`` ``[1, R, R]`` for ``--box`` / ``--half`` (``None`` for a mask or nothing)."""
    r = resolution
    keep = torch.ones(1, r, r)
    if options is None:
        return None
    if options.box is not None:
        x0, y0, x1, y1 = parse_box(options.box)
        if not (0 <= x0 < x1 <= r and 0 <= y0 < y1 <= r):
            raise UserError(
                f"--box {options.box}: out of range for {r}x{r} images; need 0 <= x0 < x1 <= {r} and "
                f"0 <= y0 < y1 <= {r} (pixels of the data resolution, x1 and y1 excluded), e.g. --box 0,0,{r // 2},{r}"
            )
        keep[:, y0:y1, x0:x1] = 0
        return keep
    if options.half is not None:
        m = r // 2
        region = {"left": (slice(None), slice(0, m)), "right": (slice(None), slice(m, r)),
                  "top": (slice(0, m), slice(None)), "bottom": (slice(m, r), slice(None))}[options.half]
        keep[(slice(None), *region)] = 0
        return keep
    return None


def _check_one(options: ImageEditOptions | None) -> None:
    if options is None:
        return
    given = [f"--{n}" for n in ("mask", "box", "half") if getattr(options, n) is not None]
    if len(given) > 1:
        raise UserError(f"{' and '.join(given)}: give at most one of --mask, --box, --half (the region to generate)")


# ------------------------------------------------------------------ batches
def edit_batches(
    inputs: Sequence[str],
    num: int,
    batch_size: int,
    *,
    resolution: int,
    channels: int,
    labels: list[str] | None,
    classes: Sequence[int] | None = None,
    options: ImageEditOptions | None = None,
) -> Iterable[dict]:
    """The inputs as sampling batches with ``known`` and ``keep`` (see the module docstring).
    Every input is read and checked here, before any batch is made (a bad one raises now)."""
    _check_one(options)
    if not inputs:
        raise UserError("--input: give at least one PNG or JPEG image to edit")
    fixed = region_keep(options, resolution)
    known, keep, sources = [], [], []
    for name in inputs:
        x, size = load_input(name, resolution, channels)
        if options is not None and options.mask is not None:
            k = load_mask(options.mask, resolution, size, str(name))
        else:
            k = fixed if fixed is not None else torch.zeros(1, resolution, resolution)
        known.append(x)
        keep.append(k)
        sources.append(str(name))
    if options is not None and options.mask is not None:
        for k, name in zip(keep, sources):
            if bool((k > 0.5).all()):
                raise UserError(
                    f"--mask {options.mask}: no white pixel at {resolution}x{resolution} (after cropping and resizing "
                    f"like {name}), so nothing to generate; white pixels are generated, black ones kept"
                )
    return tensor_batches(torch.stack(known), torch.stack(keep), num, batch_size, labels=labels, classes=classes,
                          sources=sources)


def tensor_batches(
    known: torch.Tensor,
    keep: torch.Tensor,
    num: int,
    batch_size: int,
    *,
    labels: list[str] | None = None,
    classes: Sequence[int] | None = None,
    sources: Sequence[str] | None = None,
) -> Iterable[dict]:
    """Edit batches of images already in [-1, 1] (``known`` [N, C, R, R], ``keep``
    [N, 1, R, R]): each image repeated ``num`` times (image i's copies are outputs
    i*num .. i*num+num-1). ``classes`` are the outputs' class ids, cycled; without them the
    batches carry no ``cond`` (a class-conditional U-Net then uses its unconditional label
    and infers the class from the kept pixels)."""
    n = len(known) * num
    src = list(sources) if sources is not None else [f"input{i}" for i in range(len(known))]
    ids = cycle_classes(n, classes, None) if classes else None
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        which = torch.arange(start, stop) // num
        batch = {
            "shape": (stop - start, *known.shape[1:]),
            "index": list(range(start, stop)),
            "known": known[which].clone(),
            "keep": keep[which].clone(),
            "inputs": [src[i] for i in which.tolist()],
        }
        if ids is not None:
            part = ids[start:stop]
            batch["cond"] = torch.tensor(part, dtype=torch.long)
            batch["labels"] = [labels[i] if labels and 0 <= i < len(labels) else str(i) for i in part]
        yield batch


# ------------------------------------------------------------------ writing
def marked(known: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``known`` [B, C, H, W] as RGB with the generated region (keep 0) tinted red."""
    rgb = known.expand(-1, 3, -1, -1) if known.shape[1] == 1 else known
    colour = torch.tensor(MARK, dtype=rgb.dtype).view(1, 3, 1, 1)
    k = keep.to(rgb.dtype).expand(len(rgb), 1, *rgb.shape[2:])
    return k * rgb + (1 - k) * (0.35 * rgb + 0.65 * colour)


def labelled_rows(rows: Sequence[torch.Tensor], names: Sequence[str], path: Path, *, min_cell: int = MIN_CELL,
                  margin: int = 52) -> Path:
    """One RGB PNG of image rows (each ``[k, C, H, W]`` in [-1, 1], gray or RGB, the same
    ``k``), the rows named in a left margin."""
    from PIL import Image, ImageDraw

    rgb = lambda t: t.float().expand(-1, 3, -1, -1) if t.shape[1] == 1 else t.float()  # noqa: E731
    k = len(rows[0])
    body = grid(to_uint8(torch.cat([rgb(r) for r in rows])), ncols=k, min_cell=min_cell)
    canvas = np.full((body.shape[0], body.shape[1] + margin, 3), 255, np.uint8)
    canvas[:, margin:] = body
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    cell = (body.shape[0] - 1) / len(rows)
    for i, name in enumerate(names):
        draw.text((4, int(cell * i + cell / 2) - 5), name, fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def before_after(known: torch.Tensor, keep: torch.Tensor, x: torch.Tensor, path: Path) -> Path:
    """One PNG, three rows: the inputs, the inputs with the generated region tinted red, the
    outputs (one column per edit, at most ``MAX_COLUMNS``), with the rows named on the left."""
    k = min(len(x), MAX_COLUMNS)
    return labelled_rows([known[:k], marked(known[:k], keep[:k]), x[:k]], ("input", "region", "output"), path)


def write_edits(results: list[tuple[torch.Tensor, dict]], out_dir: Path) -> list[Path]:
    """One PNG per edit, ``<index>_<input name>[_<class>].png``, and ``before_after.png``."""
    xs, known, keep, idx, names = [], [], [], [], []
    for x, batch in results:
        x = x.detach().float().cpu()
        xs.append(x)
        known.append(batch["known"].detach().float().cpu())
        kp = batch.get("keep")
        kp = torch.zeros(1) if kp is None else kp.detach().float().cpu()
        keep.append(torch.broadcast_to(kp, x.shape)[:, :1])
        idx += list(batch.get("index", range(len(idx), len(idx) + len(x))))
        stems = [Path(s).stem for s in batch.get("inputs", [""] * len(x))]
        labels = list(batch.get("labels") or [None] * len(x))
        names += ["_".join(safe_label(p) for p in (s, lb) if p) or None for s, lb in zip(stems, labels)]
    if not xs:
        return []
    x = torch.cat(xs)
    paths = write_images(x, out_dir, indices=idx, labels=names, grid_name=None)
    paths.append(before_after(torch.cat(known), torch.cat(keep), x, Path(out_dir) / BEFORE_AFTER))
    return paths
