"""Writing generated audio: 16-bit PCM WAV files (soundfile), a record of the clips that
went beyond [-1, 1] and were clipped, and spectrogram pictures (matplotlib with the Agg
backend, so no display is needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402


def safe_name(label: str) -> str:
    """A label as a file-name fragment (``"C#4"`` -> ``"Cs4"``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label.replace("#", "s")) or "sample"


CLIPPING_NAME = "clipping.json"


def write_wav(path: Path, wave: torch.Tensor, sample_rate: int) -> tuple[int, float]:
    """Mono 16-bit PCM; samples beyond [-1, 1] are clipped rather than wrapped. Returns how
    many samples were clipped and the largest |x| before clipping."""
    w = wave.detach().float().cpu()
    sf.write(str(path), w.clamp(-1.0, 1.0).numpy(), sample_rate, subtype="PCM_16")
    return int((w.abs() > 1.0).sum()), float(w.abs().max()) if w.numel() else 0.0


def record_clipping(out_dir: Path, counts: dict[str, tuple[int, float]]) -> Path | None:
    """``counts``: (samples clipped, peak |x|) per WAV written. If any was clipped, write
    ``clipping.json`` (the totals and each clipped file) and say so in one line on stderr;
    returns its path, or ``None`` when nothing was clipped."""
    from .data import report

    bad = {name: c for name, c in counts.items() if c[0]}
    if not bad:
        return None
    total, peak = sum(c for c, _ in bad.values()), max(p for _, p in bad.values())
    path = Path(out_dir) / CLIPPING_NAME
    path.write_text(json.dumps({
        "clips": len(counts), "clipped_clips": len(bad), "clipped_samples": total, "max_abs": round(peak, 4),
        "files": {name: {"clipped_samples": c, "max_abs": round(p, 4)} for name, (c, p) in bad.items()},
    }, indent=2) + "\n")
    report(f"{len(bad)} of {len(counts)} clips exceeded [-1, 1] and were clipped in the WAV files "
           f"({total} samples, max |x| {peak:.2f}); listed in {path}")
    return path


def plot_spectrogram(ax, db: torch.Tensor, *, sample_rate: int, hop_length: int, title: str = "", vmin=None, vmax=None) -> None:
    frames = db.shape[-1]
    ax.imshow(db.detach().cpu().numpy(), origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
              extent=(0, frames * hop_length / sample_rate, 0, db.shape[0]), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("time (s)", fontsize=7)
    ax.set_ylabel("mel bin", fontsize=7)
    ax.tick_params(labelsize=6)


def write_spectrogram_png(path: Path, db: torch.Tensor, *, sample_rate: int, hop_length: int, title: str, vmin: float, vmax: float) -> None:
    fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=100)
    plot_spectrogram(ax, db, sample_rate=sample_rate, hop_length=hop_length, title=title, vmin=vmin, vmax=vmax)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_grid_png(path: Path, dbs: list[torch.Tensor], titles: list[str], *, sample_rate: int, hop_length: int,
                   vmin: float, vmax: float, cols: int = 8) -> None:
    """Spectrograms side by side, ``cols`` per row."""
    n = len(dbs)
    cols = max(1, min(cols, n))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.6 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, db, title in zip(axes.flat, dbs, titles):
        plot_spectrogram(ax, db, sample_rate=sample_rate, hop_length=hop_length, title=title, vmin=vmin, vmax=vmax)
        ax.set_xlabel("")
        ax.set_ylabel("")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
