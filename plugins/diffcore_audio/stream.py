"""Streaming a large audio folder: the files are listed up front and decoded per item.

``data.stream`` chooses between this and reading every clip into memory first
(:func:`diffcore_audio.data.read_folder`):

- ``true``: stream; ``false``: read up front (unusable files are then skipped, each named);
- ``auto`` (the default): stream when the folder holds more than :data:`STREAM_FILES` audio
  files, or when its clips and spectrograms would take more than :data:`STREAM_BYTES` of
  memory (number of files x (two copies of a clip + its spectrogram) in float32).

A streamed folder keeps only its file names (one numpy array of bytes) and class ids; each
training item reads its file with soundfile and turns it into a spectrogram exactly as the
in-memory path does (mono, resampled, cut or padded, the same log-mel normalisation, the same
hold-out split). Decoding runs in the DataLoader's worker processes
(``training.num_workers``); the data set holds no open file.

The normalisation statistic (``db_max``, the loudest mel bin: :mod:`.spectrogram`) comes
from at most :data:`FIT_FILES` training files spread evenly over the folder, read before
training; with fewer training files than that it is the in-memory path's figure exactly, and a
louder bin elsewhere is clipped to +1. Those files are also the check made up front: one that
would be skipped (unreadable, too short, silent) stops the run with a message naming it. So
does such a file met later, mid-training (no file is skipped silently while streaming): remove
or fix it and train again (``--resume`` continues from the run's last checkpoint).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from diffcore import UserError

from .data import Listing, Unusable, usable_clip
from .spectrogram import MelCodec

STREAM_FILES = 20_000  # auto streams folders with more audio files than this...
STREAM_BYTES = 1 << 30  # ...or whose clips and spectrograms would exceed this in memory (1 GiB)
FIT_FILES = 256  # training files read before training: checked, and giving db_max
EVAL_CLIPS = 2_000  # `diffcore evaluate` on a streamed folder reads at most this many of each split


class UnusableClip(UserError):
    """A file that cannot be a clip, met while streaming. Raised in a DataLoader worker, torch
    re-raises it in the trainer as ``UnusableClip("Caught UnusableClip in DataLoader worker
    process 0. Original Traceback ...: <message>")``; only the message is kept."""

    def __init__(self, message: str):
        marker = f"{type(self).__module__}.{type(self).__qualname__}: "
        if message.startswith("Caught ") and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


def choose(stream: bool | str, files: int, num_samples: int, shape: tuple[int, int]) -> bool:
    """Whether ``data.stream`` (true, false or auto) streams a folder of ``files`` files."""
    if stream != "auto":
        return bool(stream)
    per_file = 4 * (2 * num_samples + shape[0] * shape[1])
    return files > STREAM_FILES or files * per_file > STREAM_BYTES


class ClipFolderStream(Dataset):
    """Items ``{"x": [n_mels, frames]}`` plus ``"cond"`` (class id) when labelled, read from
    the files ``rel[index]`` under ``root`` at each access and encoded by ``codec``."""

    def __init__(self, listing: Listing, index: np.ndarray, codec: MelCodec, clip: dict):
        self.root = str(listing.root)
        self.rel = listing.rel[index]
        self.ids = listing.ids[index] if listing.labels is not None else None
        self.codec, self.clip = codec, clip  # clip: usable_clip's keyword arguments

    def __len__(self) -> int:
        return len(self.rel)

    def path(self, i: int) -> str:
        return os.path.join(self.root, os.fsdecode(self.rel[i]))

    def wave(self, i: int, when: str = "while streaming the folder") -> torch.Tensor:
        """File i as a clip ``[num_samples]``; a file the in-memory path would skip ->
        :class:`UnusableClip` naming it."""
        try:
            return usable_clip(self.path(i), **self.clip)[0]
        except Unusable as e:
            raise UnusableClip(
                f"data.path: {self.path(i)} is {e}, found {when}; a streamed folder must hold only usable files: "
                "remove or fix it, then train again (`diffcore train --out RUN --resume` continues from the run's last "
                "checkpoint), or set data.stream: false to read the folder up front, skipping unusable files"
            ) from None

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"x": self.codec.encode(self.wave(i)[None])[0]}
        if self.ids is not None:
            item["cond"] = torch.tensor(int(self.ids[i]), dtype=torch.long)
        return item

    def waves(self, limit: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """At most ``limit`` clips ``[n, num_samples]``, evenly spaced, with their class ids."""
        n = len(self)
        picks = np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int)) if n else np.arange(0)
        waves = torch.stack([self.wave(int(i), "before training") for i in picks]) if n else torch.zeros(0, self.codec.num_samples)
        return waves, (torch.from_numpy(self.ids[picks].astype(np.int64)) if self.ids is not None else None)


def open_folder(listing: Listing, train: torch.Tensor, val: torch.Tensor, codec: MelCodec, clip: dict,
                fit: bool) -> tuple[ClipFolderStream, ClipFolderStream | None]:
    """The train and held-out streams of ``listing`` (``train`` and ``val``: indices); reads
    :data:`FIT_FILES` training files, fitting ``codec`` on them when ``fit``."""
    tr = ClipFolderStream(listing, train.numpy(), codec, clip)
    va = ClipFolderStream(listing, val.numpy(), codec, clip) if len(val) else None
    waves, _ = tr.waves(FIT_FILES)
    if fit:
        codec.fit(waves)
    return tr, va
