"""Reading a folder of audio files into fixed-length mono clips.

``data.path=DIR`` trains on every audio file under ``DIR`` (WAV, FLAC, OGG, AIFF, MP3...:
whatever libsndfile reads, through ``soundfile``). Each file is mixed down to mono,
resampled to ``data.sample_rate`` (``torchaudio.functional.resample``, a windowed-sinc
filter), then cut to ``data.clip_seconds`` from its start, or padded with silence at the end.

If ``DIR`` has subfolders, each subfolder's name is a class label (``DIR/C4/*.wav``,
``DIR/kick/*.wav``...) and a model trained on it is class-conditional; files directly in
``DIR`` are then ignored. Without subfolders the data is unlabelled.

A file is skipped, and reported by name with the reason, when it cannot be decoded
(corrupt, or not audio though named like audio), when it is silent (peak below
``data.silence_db`` dBFS), or when it is shorter than ``data.min_seconds``. A folder with
nothing usable is a :class:`~diffcore.UserError` naming it. A large folder is not read here but
streamed, one file per training item (:mod:`diffcore_audio.stream`, ``data.stream``), from the
same file list (:func:`list_folder`) and the same checks (:func:`usable_clip`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from diffcore import UserError

AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".mp3", ".au", ".caf", ".w64", ".rf64")


@dataclass
class FolderAudio:
    """What :func:`read_folder` found."""

    waves: torch.Tensor  # [N, num_samples] float32
    class_ids: torch.Tensor  # [N] long (all 0 when unlabelled)
    labels: list[str] | None  # class names, or None when the folder has no subfolders
    files: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)
    resampled: int = 0  # files whose rate differed from the configured one
    padded: int = 0  # files shorter than the clip (padded with silence)
    cut: int = 0  # files longer than the clip


def report(msg: str) -> None:
    """A message for the user on stderr (the CLI's own output stays on stdout)."""
    print(f"diffcore-audio: {msg}", file=sys.stderr, flush=True)


def read_clip(path: Path, sample_rate: int, num_samples: int) -> tuple[torch.Tensor, int, int]:
    """One file as a mono float32 waveform ``[samples]`` at ``sample_rate`` (not cut or
    padded yet), plus the file's own rate and frame count. Raises ``RuntimeError`` (the
    libsndfile message) or ``ValueError`` for an unreadable file."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if data.size == 0:
        raise ValueError("it holds no audio frames")
    if not np.all(np.isfinite(data)):
        raise ValueError("it holds NaN or infinite samples")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if rate != sample_rate:
        wave = AF.resample(wave, int(rate), int(sample_rate))
    return wave, int(rate), data.shape[0]


def fit_length(wave: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Cut to ``num_samples`` from the start, or pad with trailing silence."""
    if wave.shape[-1] >= num_samples:
        return wave[..., :num_samples]
    return torch.nn.functional.pad(wave, (0, num_samples - wave.shape[-1]))


class Unusable(ValueError):
    """Why a file cannot be a training clip (unreadable, too short, silent): the message."""


def usable_clip(path: str | Path, *, sample_rate: int, num_samples: int, min_seconds: float,
                silence_db: float) -> tuple[torch.Tensor, int, int]:
    """``path`` as a training clip ``[num_samples]`` (see the module docstring), with the file's
    own rate and its length in samples at ``sample_rate`` before cutting or padding; a file that
    would be skipped raises :class:`Unusable` with the reason."""
    try:
        wave, rate, frames = read_clip(Path(path), sample_rate, num_samples)
    except (RuntimeError, ValueError, OSError, sf.LibsndfileError) as e:  # LibsndfileError is a RuntimeError
        raise Unusable(f"unreadable ({str(e).strip() or type(e).__name__})") from None
    if wave.shape[-1] < int(round(min_seconds * sample_rate)):
        raise Unusable(f"too short ({frames / rate:.3f} s < data.min_seconds = {min_seconds} s)")
    clip = fit_length(wave, num_samples)
    peak = float(clip.abs().max())
    if peak < 10 ** (silence_db / 20):
        level = f"{20 * np.log10(peak):.1f} dBFS" if peak > 0 else "digital silence"
        raise Unusable(f"silent (peak {level} < data.silence_db = {silence_db} dBFS)")
    return clip, rate, wave.shape[-1]


def _audio_names(folder: Path) -> list[str]:
    """Audio files directly in ``folder``, sorted (``DirEntry.is_file`` reads the directory
    entry's type: no stat per file)."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if os.path.splitext(e.name)[1].lower() in AUDIO_EXTENSIONS
                      and not e.name.startswith(".") and e.is_file())


@dataclass
class Listing:
    """The audio files of a folder, in order: ``rel[i]`` (bytes, ``os.fsencode``) is file i's
    path under ``root``, ``ids[i]`` its class id (0 when unlabelled), ``labels`` the classes
    (subfolders holding audio files) or ``None``. A numpy array, not a list of ``Path``: small,
    and not copied page by page into forked workers (pytorch/pytorch#13246)."""

    root: Path
    rel: np.ndarray  # dtype S (bytes)
    ids: np.ndarray  # int32
    labels: list[str] | None

    def __len__(self) -> int:
        return len(self.rel)

    def path(self, i: int) -> Path:
        return self.root / os.fsdecode(self.rel[i])


def list_folder(folder: str | Path, *, verbose: bool = True) -> Listing:
    """Every audio file under ``folder`` (see the module docstring), by name only: nothing is
    opened. A missing folder, a file, or no audio file -> UserError naming it."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise UserError(f"data.path: the folder {folder} does not exist; point data.path at a folder of audio files (WAV, FLAC, ...)")
    if not folder.is_dir():
        raise UserError(f"data.path: {folder} is a file, not a folder; put the audio files in a folder and pass that")
    with os.scandir(folder) as it:
        subdirs = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    if subdirs:
        labelled = [(d, [os.path.join(d, f) for f in _audio_names(folder / d)]) for d in subdirs]
        labelled = [(name, files) for name, files in labelled if files]
        loose = _audio_names(folder)
        if loose and verbose:
            report(f"ignored {len(loose)} audio file(s) directly in {folder}: with subfolders, each subfolder is a class")
    else:
        labelled = [("", _audio_names(folder))]
    if not any(files for _, files in labelled):
        where = f"{folder} or its subfolders" if subdirs else str(folder)
        raise UserError(
            f"data.path: no audio files in {where} (looked for {', '.join(AUDIO_EXTENSIONS)}); "
            "put WAV/FLAC files there, or one subfolder of them per class"
        )
    rel = np.array([os.fsencode(f) for _, files in labelled for f in files], dtype=np.bytes_)
    ids = np.concatenate([np.full(len(files), c, dtype=np.int32) for c, (_, files) in enumerate(labelled)])
    return Listing(folder, rel, ids, [name for name, _ in labelled] if subdirs else None)


def read_folder(
    folder: str | Path,
    *,
    sample_rate: int,
    num_samples: int,
    min_seconds: float,
    silence_db: float,
    verbose: bool = True,
    listing: Listing | None = None,
) -> FolderAudio:
    """Every usable clip under ``folder`` (see the module docstring); ``listing``: its
    :func:`list_folder`, if already made."""
    listing = listing if listing is not None else list_folder(folder, verbose=verbose)
    folder, subdirs = listing.root, listing.labels is not None
    labelled = [(name, [listing.path(i) for i in np.flatnonzero(listing.ids == c)])
                for c, name in enumerate(listing.labels or [""])]

    waves, ids, files, skipped = [], [], [], []
    resampled = padded = cut = 0
    kept_labels: list[str] = []
    for name, paths in labelled:
        class_waves = []
        for path in paths:
            try:
                clip, rate, length = usable_clip(path, sample_rate=sample_rate, num_samples=num_samples,
                                                 min_seconds=min_seconds, silence_db=silence_db)
            except Unusable as e:
                skipped.append((path, str(e)))
                continue
            resampled += rate != sample_rate
            padded += length < num_samples
            cut += length > num_samples
            class_waves.append(clip)
            files.append(path)
        if class_waves:
            ids += [len(kept_labels)] * len(class_waves)
            kept_labels.append(name)
            waves += class_waves

    if verbose:
        for path, reason in skipped:
            report(f"skipped {path}: {reason}")
    if not waves:
        raise UserError(
            f"data.path: none of the {len(skipped)} audio file(s) in {folder} is usable "
            f"(first: {skipped[0][0].name}: {skipped[0][1]}); check the files or data.min_seconds / data.silence_db"
        )
    if verbose:
        msg = f"read {len(waves)} clip(s) from {folder}"
        if skipped:
            msg += f"; skipped {len(skipped)} file(s) (named above)"
        details = []
        if resampled:
            details.append(f"{resampled} resampled to {sample_rate} Hz")
        if padded:
            details.append(f"{padded} padded with silence to {num_samples / sample_rate:g} s")
        if cut:
            details.append(f"{cut} cut to {num_samples / sample_rate:g} s")
        if details:
            msg += " (" + ", ".join(details) + ")"
        report(msg)
    return FolderAudio(
        waves=torch.stack(waves), class_ids=torch.tensor(ids, dtype=torch.long),
        labels=kept_labels if subdirs else None, files=files, skipped=skipped,
        resampled=resampled, padded=padded, cut=cut,
    )
