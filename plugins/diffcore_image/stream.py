"""Streaming a large image folder: the files are listed up front and decoded per item.

``data.stream`` chooses between this and reading the whole folder into one tensor
(:func:`diffcore_image.data.load_folder`):

- ``true``: stream; ``false``: read up front (unreadable files are then skipped with a warning);
- ``auto`` (the default): stream when the folder holds more than :data:`STREAM_FILES` image
  files, or when reading it up front would take more than :data:`STREAM_BYTES` of memory,
  estimated from :data:`PROBE_FILES` files spread over the folder (their decoded size,
  times the number of files, plus the tensor at ``data.resolution``).

A streamed folder keeps only its file names (one numpy array of bytes, a few MB for 200,000
files) and class ids; each training item opens its file with PIL and preprocesses it exactly
as the in-memory path does (same crop, resize, scaling, same split), so the two give equal
items. Decoding runs in the DataLoader's worker processes (``training.num_workers``); the
data set holds no open file and pickles small.

Before training, only the probe files are decoded (with ``data.channels: null`` they also
decide grayscale or RGB: RGB if any of them is in colour; set ``data.channels`` when a folder
mixes both). A file that cannot be decoded later, mid-training, stops the run with one message
naming it (no file is skipped silently, so a run sees the data it was given): remove or
replace the file and train again (``--resume`` continues from the run's last checkpoint).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from diffcore import UserError

from .data import ImageSet, Listing, _is_colour, _to_array

STREAM_FILES = 20_000  # auto streams folders with more image files than this...
STREAM_BYTES = 1 << 30  # ...or whose up-front copy would exceed this (1 GiB)
PROBE_FILES = 32  # files decoded before training: checked, and sizing the auto choice
EVAL_IMAGES = 10_000  # `diffcore evaluate` on a streamed folder reads at most this many of each split


class UnreadableImage(UserError):
    """An image that failed to decode while streaming. Raised in a DataLoader worker, torch
    re-raises it in the trainer as ``UnreadableImage("Caught UnreadableImage in DataLoader
    worker process 0. Original Traceback ...: <message>")``; only the message is kept, so the
    user reads one line."""

    def __init__(self, message: str):
        marker = f"{type(self).__module__}.{type(self).__qualname__}: "
        if message.startswith("Caught ") and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


def decode(path: str | Path, resolution: int, channels: int) -> np.ndarray:
    """One image file as ``[C, resolution, resolution]`` float32 in [-1, 1] (the in-memory
    path's preprocessing); an unreadable file -> :class:`UnreadableImage` naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return _to_array(img, resolution, channels)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UnreadableImage(
            f"data.path: cannot read {path} ({_reason(e, path)}) while streaming the folder; remove or "
            "replace the file, then train again (`diffcore train --out RUN --resume` continues from the run's last "
            "checkpoint), or set data.stream: false to read the folder up front, skipping unreadable files"
        ) from None


def _reason(e: Exception, path) -> str:
    """The error's class, and its message unless that only repeats the file's name."""
    return e.__class__.__name__ if str(path) in str(e) or not str(e) else f"{e.__class__.__name__}: {e}"


@dataclass
class Probe:
    """What the probe files said: ``colour`` (any in colour), the estimated bytes of the
    in-memory copy, and the files that failed, with the reason."""

    colour: bool
    memory_bytes: int
    failed: list[tuple[Path, str]]


def probe(listing: Listing, resolution: int, channels: int | None) -> Probe:
    """Decode :data:`PROBE_FILES` files spread evenly over ``listing`` (the first and last
    included)."""
    from PIL import Image, UnidentifiedImageError

    n = len(listing)
    picks = np.unique(np.linspace(0, n - 1, min(n, PROBE_FILES)).round().astype(int))
    colour, pixels, failed = False, [], []
    for i in picks:
        path = listing.path(int(i))
        try:
            with Image.open(path) as img:
                img.load()
                pixels.append(img.size[0] * img.size[1] * len(img.getbands()))
                colour = colour or (channels is None and _is_colour(img))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            failed.append((path, _reason(e, path)))
    # the up-front path holds every decoded image, then the float32 tensor (3 channels at most)
    per_file = (np.mean(pixels) if pixels else 0) + (channels or 3) * resolution**2 * 4
    return Probe(colour, int(per_file * n), failed)


def choose(stream: bool | str, listing: Listing, found: Probe | None) -> bool:
    """Whether ``data.stream`` (true, false or auto) streams this folder (see the module docstring)."""
    if stream != "auto":
        return bool(stream)
    return len(listing) > STREAM_FILES or (found is not None and found.memory_bytes > STREAM_BYTES)


class ImageFolderStream(Dataset):
    """Items ``{"x": [C, H, W]}`` plus ``"cond"`` (class id) when labelled, decoded from the
    files ``rel[index]`` under ``root`` at each access; ``hflip`` as in
    :class:`diffcore_image.data.ImageDataset`. Holds only strings, numbers and numpy arrays."""

    def __init__(self, listing: Listing, index: np.ndarray, resolution: int, channels: int, hflip: bool = False):
        self.root = str(listing.root)
        self.rel = listing.rel[index]
        self.ids = listing.ids[index] if listing.labels is not None else None
        self.resolution, self.channels, self.hflip = resolution, channels, hflip

    def __len__(self) -> int:
        return len(self.rel)

    def path(self, i: int) -> str:
        return os.path.join(self.root, os.fsdecode(self.rel[i]))

    def __getitem__(self, i: int) -> dict:
        x = torch.from_numpy(decode(self.path(i), self.resolution, self.channels))
        if self.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        item = {"x": x}
        if self.ids is not None:
            item["cond"] = torch.tensor(int(self.ids[i]), dtype=torch.long)
        return item


def open_folder(listing: Listing, stream: bool | str, resolution: int, channels: int | None,
                val_fraction: float, seed: int, hflip: bool) -> tuple[ImageFolderStream, ImageFolderStream] | None:
    """The train and held-out streams of ``listing``, or ``None`` when ``data.stream`` says to
    read the folder up front. A probe file that cannot be read is a UserError naming it."""
    from .data import split_indices

    if stream is False:
        return None
    found = probe(listing, resolution, channels)
    if not choose(stream, listing, found):
        return None
    if found.failed:
        path, reason = found.failed[0]
        more = f" (and {len(found.failed) - 1} more of the {PROBE_FILES} checked)" if len(found.failed) > 1 else ""
        raise UserError(
            f"data.path: cannot read {path} ({reason}){more}; a streamed folder must hold only readable images: "
            "remove or replace it, or set data.stream: false to read the folder up front, skipping unreadable files"
        )
    channels = channels or (3 if found.colour else 1)
    labelled = listing.ids if listing.labels is not None else None
    tr, va = split_indices(len(listing), labelled, val_fraction, seed)
    return (ImageFolderStream(listing, tr, resolution, channels, hflip),
            ImageFolderStream(listing, va, resolution, channels))


def materialise(ds: ImageFolderStream, limit: int = EVAL_IMAGES) -> ImageSet:
    """At most ``limit`` items of ``ds``, evenly spaced, decoded into an :class:`ImageSet`
    (what :meth:`ImageDomain.evaluate` measures against)."""
    n = len(ds)
    picks = np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int)) if n else np.arange(0)
    x = torch.zeros(len(picks), ds.channels, ds.resolution, ds.resolution)
    for k, i in enumerate(picks):
        x[k] = torch.from_numpy(decode(ds.path(int(i)), ds.resolution, ds.channels))
    y = torch.from_numpy(ds.ids[picks].astype(np.int64)) if ds.ids is not None else None
    return ImageSet(x, y, None)
