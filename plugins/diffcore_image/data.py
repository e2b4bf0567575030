"""Image data: the embedded digits set and folders of PNG/JPEG files.

Both end as one float tensor ``[N, C, H, W]`` in [-1, 1] plus, when there are classes, a
``LongTensor [N]`` of class ids and the class names.

Digits (the default, offline): scikit-learn's copy of the UCI handwritten digits, 1,797
labelled 8x8 images with values 0..16. They are scaled to [-1, 1] (v / 8 - 1) and resized
bilinearly to ``resolution`` (16 by default), which keeps their strokes smooth: a U-Net has
room for one downsampling level and attention at 8x8, and no pixels are spent on padding.

A folder: every PNG/JPEG file is opened with PIL, converted to grayscale or RGB (16-bit
grayscale PNGs scaled by 65535, 8-bit images by 255), centre-cropped to a square and resized (bicubic) to ``resolution``. If the folder has
subfolders holding images, each subfolder is a class (named after it, files found
recursively); otherwise the images are unlabelled. A file PIL cannot read is reported by name
on the ``diffcore_image`` logger and skipped, with a count at the end. A large folder is not
read here but streamed, decoding each image as training needs it (:mod:`diffcore_image.stream`,
``data.stream``), from the same file list (:func:`list_images`) and split (:func:`split_indices`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from diffcore import UserError

log = logging.getLogger("diffcore_image")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
DIGIT_LABELS = [str(i) for i in range(10)]


@dataclass
class ImageSet:
    """Images ``x`` [N, C, H, W] in [-1, 1]; ``y`` [N] class ids or ``None``; class names."""

    x: torch.Tensor
    y: torch.Tensor | None
    labels: list[str] | None
    skipped: list[Path] | None = None


def load_digits(resolution: int = 16) -> ImageSet:
    """scikit-learn's digits at ``resolution`` x ``resolution``, in [-1, 1]."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    x = torch.from_numpy(d.images.astype(np.float32))[:, None] / 8.0 - 1.0  # 0..16 -> [-1, 1]
    if resolution != 8:
        # bilinear interpolation is a convex combination of pixels: the range stays [-1, 1]
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return ImageSet(x.contiguous(), torch.from_numpy(d.target).long(), list(DIGIT_LABELS))


@dataclass
class Listing:
    """The image files of a folder, in training order: ``rel[i]`` (bytes, ``os.fsencode``) is
    file i's path under ``root``, ``ids[i]`` its class id (-1 when unlabelled). One numpy array
    of bytes, not a list of ``Path``: 200,000 names take a few MB, list in well under a second,
    and a forked worker reading them copies no pages (a list of Python objects is copied page
    by page as its reference counts change: pytorch/pytorch#13246)."""

    root: Path
    rel: np.ndarray  # dtype S (bytes)
    ids: np.ndarray  # int32
    labels: list[str] | None

    def __len__(self) -> int:
        return len(self.rel)

    def path(self, i: int) -> Path:
        return self.root / os.fsdecode(self.rel[i])


def _is_image(entry: os.DirEntry) -> bool:
    return os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file()


def _image_names(folder: Path) -> list[str]:
    """Image files directly in ``folder`` (``DirEntry.is_file`` reads the directory entry's type:
    no stat per file)."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if _is_image(e))


def _walk(folder: Path, prefix: str, out: list[bytes]) -> None:
    """Append the image files under ``folder`` to ``out`` as ``prefix/...`` (bytes). Depth
    first, each folder's entries by name: the order ``Path`` objects sort in (part by part).
    Like ``rglob``, symbolic links to folders are not followed."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            _walk(Path(e.path), os.path.join(prefix, e.name), out)
        elif _is_image(e):
            out.append(os.fsencode(os.path.join(prefix, e.name)))


def list_images(path: str | Path) -> Listing:
    """Every PNG/JPEG under ``path`` (a class per subfolder holding images, searched
    recursively; otherwise the files directly in it, unlabelled), sorted as ``Path`` objects
    sort. Nothing is opened. Not a folder, or no image file -> UserError."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UserError(f"data.path: {str(folder)!r} is not a folder; point data.path at a folder of PNG/JPEG images")
    with os.scandir(folder) as it:
        subdirs = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    rel: list[bytes] = []
    counts, labels = [], []
    for name in subdirs:
        before = len(rel)
        _walk(folder / name, name, rel)
        if len(rel) > before:
            counts.append(len(rel) - before)
            labels.append(name)
    ids = np.repeat(np.arange(len(labels), dtype=np.int32), counts)
    loose = _image_names(folder)
    if labels and loose:
        log.warning("%d image(s) directly in %s ignored: with class subfolders, put every image in one", len(loose), folder)
    elif not labels:
        rel, ids, labels = [os.fsencode(n) for n in loose], np.full(len(loose), -1, dtype=np.int32), None
    if not rel:
        raise UserError(
            f"data.path: no readable image in {str(folder)!r} (no .png/.jpg/.jpeg file); put PNG or JPEG images there "
            "(or in one subfolder per class)"
        )
    return Listing(folder, np.array(rel, dtype=np.bytes_), ids, labels)


def _is_colour(img) -> bool:
    """True if any pixel has unequal R, G, B (a grayscale image saved as RGB counts as gray)."""
    if img.mode in ("1", "L", "LA", "F") or img.mode.startswith("I"):
        return False
    a = np.asarray(img.convert("RGB"))
    return bool((a[..., 0] != a[..., 1]).any() or (a[..., 1] != a[..., 2]).any())


def _to_array(img, resolution: int, channels: int) -> np.ndarray:
    from PIL import Image

    # A 16-bit grayscale PNG opens as mode "I;16" (older Pillow: "I", 32-bit integers; PNG holds
    # at most 16 bits): convert("L") would clip every value above 255 to white. Scale by 65535.
    deep = img.mode.startswith("I")
    if deep:
        img = Image.fromarray((np.asarray(img, dtype=np.float64).clip(0, 65535) / 65535.0).astype(np.float32))  # mode F
    else:
        img = img.convert("RGB" if channels == 3 else "L")
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    img = img.crop((left, top, left + s, top + s)).resize((resolution, resolution), Image.Resampling.BICUBIC)
    if deep:  # bicubic may overshoot [0, 1]; L and RGB clip by themselves
        a = np.asarray(img, dtype=np.float32).clip(0.0, 1.0) * 2.0 - 1.0
        return np.repeat(a[None], channels, axis=0)
    a = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return a[None] if channels == 1 else a.transpose(2, 0, 1)


def load_folder(path: str | Path, resolution: int, channels: int | None = None, listing: Listing | None = None) -> ImageSet:
    """Every PNG/JPEG under ``path`` (a class per subfolder if subfolders hold images).
    ``channels`` 1 (grayscale) or 3 (RGB); ``None`` picks 3 if any image is in colour.
    Unreadable files are logged by name and skipped; no readable image -> UserError.
    ``listing``: :func:`list_images` of ``path``, if already made."""
    from PIL import Image, UnidentifiedImageError

    listing = listing if listing is not None else list_images(path)
    folder, labels = listing.root, listing.labels
    files = [(listing.path(i), int(listing.ids[i])) for i in range(len(listing))]

    images, ys, skipped = [], [], []
    decoded = []
    for p, y in files:
        try:
            with Image.open(p) as img:
                img.load()
                decoded.append((img.copy(), y, p))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            log.warning("skipping unreadable image %s (%s)", p, e.__class__.__name__)
            skipped.append(p)
    if not decoded:
        found = f"{len(files)} file(s) with a .png/.jpg/.jpeg name, none readable" if files else "no .png/.jpg/.jpeg file"
        raise UserError(
            f"data.path: no readable image in {str(folder)!r} ({found}); put PNG or JPEG images there "
            "(or in one subfolder per class)"
        )
    if channels is None:
        channels = 3 if any(_is_colour(img) for img, _, _ in decoded) else 1
    for img, y, _ in decoded:
        images.append(_to_array(img, resolution, channels))
        ys.append(y)
    if skipped:
        log.warning("skipped %d unreadable image file(s) of %d in %s", len(skipped), len(files), folder)
    x = torch.from_numpy(np.stack(images)).contiguous()
    y = torch.tensor(ys, dtype=torch.long) if labels else None
    return ImageSet(x, y, labels, skipped)


def split_indices(n: int, y: np.ndarray | None, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train / held-out indices of ``n`` items with class ids ``y`` (or ``None``):
    stratified when every class has at least two items. ``val_fraction`` 0: none held out."""
    n_val = int(round(val_fraction * n))
    if n_val == 0 or n - n_val == 0:
        return np.arange(n), np.arange(0)
    from sklearn.model_selection import train_test_split

    strat = None
    if y is not None:
        counts = np.bincount(y)
        if counts[counts > 0].min() >= 2 and n_val >= len(counts[counts > 0]):
            strat = y
    tr, va = train_test_split(np.arange(n), test_size=n_val, random_state=seed, stratify=strat)
    return np.sort(tr), np.sort(va)


def split(data: ImageSet, val_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """A deterministic train / held-out split, stratified by class when every class has at
    least two images. ``val_fraction`` 0 gives an empty held-out set."""
    tr, va = split_indices(len(data.x), None if data.y is None else data.y.numpy(), val_fraction, seed)

    def take(i):
        i = torch.from_numpy(i)
        return ImageSet(data.x[i], None if data.y is None else data.y[i], data.labels)

    return take(tr), take(va)


class ImageDataset(Dataset):
    """Items ``{"x": [C, H, W]}`` plus ``"cond"`` (class id) when labelled; optional random
    horizontal flip (a fair coin per access from torch's RNG, so a seeded run repeats)."""

    def __init__(self, data: ImageSet, hflip: bool = False):
        self.data, self.hflip = data, hflip

    def __len__(self) -> int:
        return len(self.data.x)

    def __getitem__(self, i: int) -> dict:
        x = self.data.x[i]
        if self.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        item = {"x": x}
        if self.data.y is not None:
            item["cond"] = self.data.y[i]
        return item
