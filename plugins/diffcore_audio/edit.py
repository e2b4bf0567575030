"""Editing audio (``diffcore edit``): continuation (``--keep``) and repair (``--gap``) of a
WAV file, or restyling all of it (``--mode sdedit|invert`` with neither).

The input goes through the training data's path (:mod:`.data`): read with soundfile, mixed
down to mono, resampled to ``data.sample_rate``, cut to ``data.clip_seconds`` or padded with
silence (each of these is reported on stderr), then encoded to the normalised log-mel
spectrogram exactly as the training clips are. A time range ``START:END`` in seconds selects
the mel frames whose centre (frame j is centred at j * hop_length / sample_rate: the STFT is
centred) lies in [START, END); ``END`` equal to the clip's end takes the last frame too.
``--keep`` keeps those frames and generates the others; ``--gap`` generates them and keeps the
others. The kept frames come back exactly (the core replaces them); the STFT window reaches
``n_fft / 2`` samples (32 ms by default) either side of a frame's centre, so the frames next
to a boundary see a little of the other side.

Audio: the edited spectrogram is rendered like a sample (mel inversion, then Griffin-Lim), but
Griffin-Lim is told the kept *samples*: after each inverse STFT the samples of the kept
seconds [START, END) (or outside the gap) are reset to the input's, so the generated phase
continues the input's, and the file holds the input's samples there exactly (then 16-bit PCM,
clipped to [-1, 1] like every WAV the domain writes), with a 4 ms linear cross-fade on the
generated side of each boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, ValidationInfo, field_validator

from diffcore import Options, UserError, cycle_classes

FADE_SECONDS = 0.004  # the cross-fade from kept input samples into generated ones
MAX_PICTURE_ROWS = 8  # edits shown in before_after.png


def parse_range(text: str) -> tuple[float, float | None]:
    """``"START:END"`` seconds -> ``(start, end)``; an empty START is 0, an empty END is the
    clip's end (``None``). ``ValueError`` with a message for anything else."""
    parts = str(text).strip().split(":")
    example = "write START:END in seconds, e.g. 0:0.25 (an empty END: to the end of the clip)"
    if len(parts) != 2:
        raise ValueError(f"{text!r} is not a time range; {example}")
    try:
        start = float(parts[0]) if parts[0].strip() else 0.0
        end = float(parts[1]) if parts[1].strip() else None
    except ValueError:
        raise ValueError(f"{text!r} is not a time range; {example}") from None
    if not math.isfinite(start) or (end is not None and not math.isfinite(end)):
        raise ValueError(f"{text!r} is not a time range; {example}")
    if start < 0:
        raise ValueError(f"{text!r} starts before 0 s")
    if end is not None and end <= start:
        raise ValueError(f"{text!r} is reversed or empty: START ({start:g} s) must be before END ({end:g} s)")
    return start, end


class AudioEditOptions(Options):
    """``diffcore edit`` options of the audio domain (at most one; neither keeps nothing)."""

    keep: str | None = Field(None, description="Seconds START:END of the input that are KEPT; the rest is generated (continuation: --keep 0:0.25). END may be left empty: to the end of the clip.")
    gap: str | None = Field(None, description="Seconds START:END that are GENERATED; the rest of the input is kept (repair: --gap 0.2:0.3).")

    @field_validator("keep", "gap", mode="before")
    @classmethod
    def _once(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, (list, tuple)):
            raise ValueError(f"give one range (--{info.field_name} START:END once), not {len(v)}")
        return v

    @field_validator("keep", "gap")
    @classmethod
    def _range(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        if info.field_name == "gap" and info.data.get("keep") is not None:
            raise ValueError("give --keep (the range kept: continuation) or --gap (the range generated: repair), not both")
        parse_range(v)
        return v


class EditInput:
    """One input file, read, fitted to the clip and encoded; plus its masks."""

    def __init__(self, name: str, wave: torch.Tensor, seconds: float, frame_keep: torch.Tensor, sample_keep: torch.Tensor):
        self.name, self.wave, self.seconds = name, wave, seconds
        self.frame_keep, self.sample_keep = frame_keep, sample_keep  # [frames] bool, [num_samples] bool


def read_input(path: str, sample_rate: int, num_samples: int) -> tuple[torch.Tensor, float]:
    """``path`` as the training data would read it: mono, at ``sample_rate``, cut or padded to
    ``num_samples``. Returns the clip and the file's own duration (s); reports what changed."""
    import soundfile as sf

    from .data import fit_length, read_clip, report

    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"--input {path}: no such file; give a WAV (or FLAC, OGG...) file")
    if p.is_dir():
        raise UserError(f"--input {path} is a folder; give one audio file per --input")
    try:
        wave, rate, frames = read_clip(p, sample_rate, num_samples)
        channels = sf.info(str(p)).channels
    except (RuntimeError, ValueError, OSError) as e:  # soundfile's LibsndfileError is a RuntimeError
        raise UserError(f"--input {path} is not a readable audio file ({str(e).strip() or type(e).__name__}); give a WAV, FLAC or OGG file") from None
    seconds = frames / rate
    clip = num_samples / sample_rate
    if channels > 1:
        report(f"{path}: mixed {channels} channels down to mono")
    if rate != sample_rate:
        report(f"{path}: resampled from {rate} Hz to the run's {sample_rate} Hz")
    if wave.shape[-1] > num_samples:
        report(f"{path} is {seconds:.3f} s long; cut to its first {clip:g} s (the run's data.clip_seconds)")
    elif wave.shape[-1] < num_samples:
        report(f"{path} is {seconds:.3f} s long; padded with silence to {clip:g} s (the run's data.clip_seconds)")
    return fit_length(wave, num_samples), seconds


def masks(options: AudioEditOptions, name: str, seconds: float, codec) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept mel frames ``[frames]`` and kept samples ``[num_samples]`` (bool) of one input
    of ``seconds`` (its own duration) under ``options``; a range the clip cannot hold is a
    :class:`UserError`."""
    sr, n, hop = codec.sample_rate, codec.num_samples, codec.hop_length
    clip = n / sr
    frames = torch.zeros(codec.frames, dtype=torch.bool)
    samples = torch.zeros(n, dtype=torch.bool)
    flag, text = ("keep", options.keep) if options.keep is not None else ("gap", options.gap)
    if text is None:
        return frames, samples  # keep nothing: sdedit / invert restyle the whole clip
    start, end = parse_range(text)
    eps = 0.5 / sr
    if start >= clip or (end is not None and end > clip + eps):
        raise UserError(f"--{flag} {text}: the range ends after the clip, which is {clip:g} s long (the run's data.clip_seconds); give a range within 0:{clip:g}")
    end = clip if end is None else min(end, clip)
    if flag == "keep" and end > seconds + eps:
        raise UserError(f"--{flag} {text}: {name} is only {seconds:.3f} s long; keep a range within 0:{seconds:.3f} (the rest of the clip is padding)")
    centre = torch.arange(codec.frames, dtype=torch.float64) * hop / sr
    inside = (centre >= start - eps) & ((centre < end - eps) | (end >= clip - eps))
    if not inside.any():
        raise UserError(f"--{flag} {text} holds no spectrogram frame: frames are {hop / sr * 1000:g} ms apart (data.hop_length); widen the range")
    t = torch.arange(n, dtype=torch.float64) / sr
    in_samples = (t >= start - eps) & (t < end - eps)
    if flag == "keep":
        if inside.all():
            raise UserError(f"--keep {text} keeps the whole {clip:g} s clip: nothing is left to generate; keep a shorter range")
        return inside, in_samples
    return ~inside, ~in_samples


def edit_batches(domain, inputs: Sequence[str], num: int, batch_size: int, classes: Sequence[int] | None = None,
                 options: Any = None) -> list[dict]:
    """The audio domain's :meth:`~diffcore.Domain.edit_batches`; every input is read and
    checked before anything is returned, so a bad one stops the edit before any work."""
    codec = domain.codec
    if not inputs:
        raise UserError("diffcore edit needs at least one --input WAV file")
    if options is None:
        options = AudioEditOptions()
    elif not isinstance(options, AudioEditOptions):
        options = AudioEditOptions.model_validate(options.model_dump() if hasattr(options, "model_dump") else dict(options))
    items = []
    for path in inputs:
        wave, seconds = read_input(path, codec.sample_rate, codec.num_samples)
        frame_keep, sample_keep = masks(options, path, seconds, codec)
        items.append(EditInput(str(path), wave, seconds, frame_keep, sample_keep))
    known = codec.encode(torch.stack([it.wave for it in items]))  # [inputs, n_mels, frames], as training encodes
    rows = [i for i in range(len(items)) for _ in range(num)]
    labels = domain.labels
    ids = cycle_classes(len(rows), classes, None) if (classes and labels is not None) else None
    batches = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        idx = torch.tensor(chunk)
        keep = torch.stack([items[i].frame_keep for i in chunk]).float()[:, None, :].expand(-1, codec.n_mels, -1)
        names = [Path(items[i].name).stem for i in chunk]
        batch: dict[str, Any] = {
            "shape": (len(chunk), *codec.shape),
            "index": start,
            "known": known[idx].clone(),
            "keep": keep.contiguous(),
            "wave": torch.stack([items[i].wave for i in chunk]),
            "wave_keep": torch.stack([items[i].sample_keep for i in chunk]),
            "inputs": [items[i].name for i in chunk],
        }
        if ids is not None:
            cond = ids[start : start + batch_size]
            batch["cond"] = torch.tensor(cond, dtype=torch.long)
            batch["labels"] = [f"{n}_{labels[c]}" for n, c in zip(names, cond)]
        else:
            batch["labels"] = names
        batches.append(batch)
    return batches


def griffin_lim_known(linear: torch.Tensor, known: torch.Tensor, keep: torch.Tensor, codec) -> torch.Tensor:
    """Griffin-Lim (torchaudio's fast variant, the same settings as ``codec.griffin_lim``)
    from linear power ``[B, freq, frames]`` with the samples where ``keep [B, N]`` is true
    fixed to ``known [B, N]``: they are reset after every inverse STFT, and the phase starts
    from theirs. The result holds ``known`` exactly where ``keep``, cross-faded over
    ``FADE_SECONDS`` into the generated samples."""
    gl = codec.griffin_lim
    stft = dict(n_fft=gl.n_fft, hop_length=gl.hop_length, win_length=gl.win_length, window=gl.window)
    known, keep = known.float(), keep.bool()
    mag = linear.float().clamp(min=0).sqrt()
    start = torch.stft(known * keep, center=True, pad_mode="reflect", return_complex=True, **stft)
    angles = torch.where(start.abs() > 1e-8, start / start.abs().clamp(min=1e-16), torch.ones_like(start))
    momentum = gl.momentum / (1 + gl.momentum)
    tprev = torch.zeros_like(angles)
    for _ in range(gl.n_iter):
        inverse = torch.istft(mag * angles, length=known.shape[-1], **stft)
        inverse = torch.where(keep, known, inverse)
        rebuilt = torch.stft(inverse, center=True, pad_mode="reflect", return_complex=True, **stft)
        angles = rebuilt - momentum * tprev
        angles = angles / (angles.abs() + 1e-16)
        tprev = rebuilt
    out = torch.istft(mag * angles, length=known.shape[-1], **stft)
    fade = max(1, int(round(FADE_SECONDS * codec.sample_rate)))
    w = keep.float()
    for k in range(1, fade):  # weight 1 - k / fade at k samples from the nearest kept sample
        near = torch.zeros_like(w)
        near[..., k:] = keep[..., :-k].float()
        near[..., :-k] = torch.maximum(near[..., :-k], keep[..., k:].float())
        w = torch.maximum(w, near * (1 - k / fade))
    return torch.where(keep, known, w * known + (1 - w) * out)


def render(domain, x: torch.Tensor, batch: dict, chunk: int = 64) -> torch.Tensor:
    """Edited spectrograms ``[B, n_mels, frames]`` -> waveforms ``[B, num_samples]``: the input's
    samples where kept (:func:`griffin_lim_known`), a plain decode where nothing is kept."""
    keep = batch.get("wave_keep")
    if keep is None or not keep.any():
        return domain.decode(x)
    codec = domain.codec
    x = x.detach().float().cpu()
    out = []
    for i in range(0, len(x), chunk):
        linear = codec.linear(x[i : i + chunk])
        out.append(griffin_lim_known(linear, batch["wave"][i : i + chunk], keep[i : i + chunk], codec))
    return torch.cat(out)


def write_edits(domain, results: list[tuple[torch.Tensor, dict]], out_dir: Path) -> list[Path]:
    """The samples' files (:meth:`AudioDomain.write_samples`, the audio from :func:`render`)
    plus ``before_after.png``: input spectrogram, mask, output spectrogram, one row per edit
    (the first ``MAX_PICTURE_ROWS``)."""
    out_dir = Path(out_dir)
    waves = [render(domain, x, batch) for x, batch in results]
    paths = domain.write_samples(results, out_dir, waves=waves)
    rows = []
    for x, batch in results:
        for i in range(len(x)):
            if len(rows) < MAX_PICTURE_ROWS:
                keep = batch.get("keep")
                keep = torch.zeros(x.shape[1:]) if keep is None else torch.broadcast_to(keep, batch["known"].shape)[i]
                source = Path(batch["inputs"][i]).name if "inputs" in batch else "input"
                rows.append((batch["known"][i], keep, x[i], source, batch["labels"][i]))
    if rows:
        path = out_dir / "before_after.png"
        write_before_after_png(path, rows, domain.codec)
        paths.append(path)
    return paths


def write_before_after_png(path: Path, rows: list[tuple], codec) -> None:
    """One row per ``(known, keep, x, input name, output label)``: the input's spectrogram, the
    keep mask (white: kept, black: generated) and the output's spectrogram, on one colour scale."""
    from . import writer

    plt = writer.plt
    vmax = codec.db_max
    vmin = vmax - codec.dynamic_range_db
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.2, 1.7 * len(rows) + 0.3), dpi=100, squeeze=False)
    for r, (known, keep, x, source, label) in enumerate(rows):
        kw = dict(sample_rate=codec.sample_rate, hop_length=codec.hop_length, vmin=vmin, vmax=vmax)
        writer.plot_spectrogram(axes[r, 0], codec.denormalise(known.float()), title=f"input: {source}", **kw)
        writer.plot_spectrogram(axes[r, 1], keep.float(), title="kept (white) / generated (black)", **{**kw, "vmin": 0, "vmax": 1})
        axes[r, 1].images[-1].set_cmap("gray")
        writer.plot_spectrogram(axes[r, 2], codec.denormalise(x.detach().float()), title=f"output: {label}", **kw)
        for ax in axes[r]:
            if r < len(rows) - 1:
                ax.set_xlabel("")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
