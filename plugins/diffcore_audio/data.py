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
nothing usable is a :class:`~diffcore.UserError` naming it.
"""

from __future__ import annotations

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


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith("."))


def read_folder(
    folder: str | Path,
    *,
    sample_rate: int,
    num_samples: int,
    min_seconds: float,
    silence_db: float,
    verbose: bool = True,
) -> FolderAudio:
    """Every usable clip under ``folder`` (see the module docstring)."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise UserError(f"data.path: the folder {folder} does not exist; point data.path at a folder of audio files (WAV, FLAC, ...)")
    if not folder.is_dir():
        raise UserError(f"data.path: {folder} is a file, not a folder; put the audio files in a folder and pass that")
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs:
        labelled = [(d.name, _audio_files(d)) for d in subdirs]
        labelled = [(name, files) for name, files in labelled if files]
        loose = _audio_files(folder)
        if loose and verbose:
            report(f"ignored {len(loose)} audio file(s) directly in {folder}: with subfolders, each subfolder is a class")
    else:
        labelled = [("", _audio_files(folder))]
    if not any(files for _, files in labelled):
        where = f"{folder} or its subfolders" if subdirs else str(folder)
        raise UserError(
            f"data.path: no audio files in {where} (looked for {', '.join(AUDIO_EXTENSIONS)}); "
            "put WAV/FLAC files there, or one subfolder of them per class"
        )

    min_samples = int(round(min_seconds * sample_rate))
    threshold = 10 ** (silence_db / 20)
    waves, ids, files, skipped = [], [], [], []
    resampled = padded = cut = 0
    kept_labels: list[str] = []
    for name, paths in labelled:
        class_waves = []
        for path in paths:
            try:
                wave, rate, frames = read_clip(path, sample_rate, num_samples)
            except (RuntimeError, ValueError, OSError, sf.LibsndfileError) as e:  # LibsndfileError is a RuntimeError
                skipped.append((path, f"unreadable ({str(e).strip() or type(e).__name__})"))
                continue
            if wave.shape[-1] < min_samples:
                skipped.append((path, f"too short ({frames / rate:.3f} s < data.min_seconds = {min_seconds} s)"))
                continue
            clip = fit_length(wave, num_samples)
            peak = float(clip.abs().max())
            if peak < threshold:
                level = f"{20 * np.log10(peak):.1f} dBFS" if peak > 0 else "digital silence"
                skipped.append((path, f"silent (peak {level} < data.silence_db = {silence_db} dBFS)"))
                continue
            resampled += rate != sample_rate
            padded += wave.shape[-1] < num_samples
            cut += wave.shape[-1] > num_samples
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
