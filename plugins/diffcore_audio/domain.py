"""The ``audio`` domain: fixed-length mono clips as normalised log-mel spectrograms.

Tensor layout: ``x`` is ``[B, n_mels, frames]`` in [-1, 1] (see :mod:`.spectrogram`); the
condition is a ``LongTensor [B]`` of class ids (a note name such as ``"A3"``, a percussion
name, or a subfolder name of ``data.path``); there is no mask (every clip has the same length).
Noise is the default i.i.d. Gaussian.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch.utils.data import Dataset

from diffcore import Domain, Options, UserError, cycle_classes

from . import stream as _stream
from . import synth
from .edit import AudioEditOptions
from .spectrogram import MelCodec


class AudioOptions(Options):
    """The ``data:`` section of the audio domain."""

    path: str | None = Field(None, description="Folder of audio files (WAV, FLAC, OGG, AIFF, MP3) to train on; one subfolder per class makes the model class-conditional. null: the embedded synthesized instrument notes.")
    sample_rate: int = Field(16000, ge=4000, le=192000, description="Sample rate (Hz) of the clips; files at other rates are resampled.")
    clip_seconds: float = Field(0.5, gt=0, le=30, description="Clip length in seconds; longer files are cut (from the start), shorter ones padded with silence.")
    min_seconds: float = Field(0.05, ge=0, description="Files shorter than this are skipped (reported by name) instead of padded.")
    silence_db: float = Field(-60.0, le=0, description="Files whose peak is below this level (dBFS) are skipped as silent.")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="Fraction of a data.path folder held out for `diffcore evaluate` (every k-th file of each class).")
    stream: bool | Literal["auto"] = Field("auto", description="data.path: true reads each file from disk as training needs it (with training.num_workers processes); false reads the folder into memory first; auto streams folders of more than 20,000 files or 1 GiB of clips.")
    n_fft: int = Field(1024, ge=16, description="STFT size (samples).")
    hop_length: int = Field(256, ge=1, description="STFT hop (samples); frames = 1 + clip samples // hop_length.")
    n_mels: int = Field(64, ge=8, description="Mel bins: the channels the backbone sees.")
    f_min: float = Field(0.0, ge=0, description="Lowest mel filter edge (Hz).")
    f_max: float | None = Field(None, gt=0, description="Highest mel filter edge (Hz); null: half the sample rate.")
    dynamic_range_db: float = Field(80.0, gt=0, description="Decibels below the loudest training bin mapped onto [-1, 1]; quieter bins are clipped to -1 (silence).")
    griffin_lim_iters: int = Field(64, ge=1, description="Griffin-Lim iterations (phase estimation) when turning spectrograms back into audio.")
    inverse_mel_iters: int = Field(100, ge=0, description="Non-negative refinement steps of the mel -> linear spectrogram inversion (0: torchaudio's InverseMelScale alone).")
    notes: list[str] = Field(default_factory=synth.default_notes, description="Embedded data: the pitched classes, as note names (A4 = 440 Hz; C#3, Bb2 ...).")
    percussion: list[str] = Field(default_factory=lambda: list(synth.PERCUSSION), description="Embedded data: percussive classes, any of kick, snare, hihat.")
    per_class: int = Field(64, ge=1, description="Embedded data: training clips per class.")
    val_per_class: int = Field(32, ge=0, description="Embedded data: held-out clips per class (for `diffcore evaluate`).")
    seed: int = Field(0, description="Embedded data: the synthesis seed (the same seed gives the same clips).")

    @field_validator("notes")
    @classmethod
    def _notes(cls, v: list[str]) -> list[str]:
        for name in v:
            if synth.note_to_midi(name) is None:
                raise ValueError(f"{name!r} is not a note name; write e.g. A4, C#3 or Bb2")
        if len(set(v)) != len(v):
            raise ValueError("notes are repeated")
        return v

    @field_validator("percussion")
    @classmethod
    def _percussion(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if p not in synth.PERCUSSION]
        if bad:
            raise ValueError(f"unknown percussion {', '.join(map(repr, bad))}; choose from {', '.join(synth.PERCUSSION)}")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _consistent(self) -> "AudioOptions":
        nyquist = self.sample_rate / 2
        if self.f_max is not None and self.f_max > nyquist:
            raise ValueError(f"f_max ({self.f_max} Hz) is above half the sample rate ({nyquist:g} Hz)")
        if self.f_min >= (self.f_max or nyquist):
            raise ValueError(f"f_min ({self.f_min} Hz) must be below f_max ({self.f_max or nyquist:g} Hz)")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft})")
        if self.num_samples < self.n_fft:
            raise ValueError(f"clip_seconds ({self.clip_seconds}) is shorter than one STFT window (n_fft = {self.n_fft} samples)")
        if self.path is None and not (self.notes or self.percussion):
            raise ValueError("the embedded data needs at least one class in notes or percussion")
        for note in self.notes:
            hz = synth.note_to_hz(note)
            if hz >= 0.45 * self.sample_rate:
                raise ValueError(f"note {note} ({hz:.0f} Hz) is too high for sample_rate {self.sample_rate}")
        return self

    @property
    def num_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))


class SpectrogramDataset(Dataset):
    """Items ``{"x": [n_mels, frames], "cond": class id}`` (``cond`` only when labelled)."""

    def __init__(self, x: torch.Tensor, ids: torch.Tensor | None):
        self.x, self.ids = x, ids

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"x": self.x[i]}
        if self.ids is not None:
            item["cond"] = self.ids[i]
        return item


class AudioDomain(Domain):
    """Audio clips as log-mel spectrograms; see the module docstring and docs/domains/audio.md."""

    name = "audio"
    Options = AudioOptions
    EditOptions = AudioEditOptions

    def __init__(self, options: AudioOptions | None = None, *, workdir: Path | None = None):
        super().__init__(options, workdir=workdir)
        o: AudioOptions = self.options
        self.codec = MelCodec(
            sample_rate=o.sample_rate, num_samples=o.num_samples, n_fft=o.n_fft, hop_length=o.hop_length,
            n_mels=o.n_mels, f_min=o.f_min, f_max=o.f_max, dynamic_range_db=o.dynamic_range_db,
            griffin_lim_iters=o.griffin_lim_iters, inverse_mel_iters=o.inverse_mel_iters,
        )
        self._labels: list[str] | None = None if o.path else o.notes + o.percussion
        self._ready = False
        self._restored = False  # load_state_dict() was called: the run's statistics and labels win
        self.train_waves = self.val_waves = None  # [N, num_samples]
        self.train_ids = self.val_ids = None  # [N] or None when unlabelled
        self.skipped: list[tuple[Path, str]] = []  # files of data.path that were skipped, with the reason
        self.streams: tuple[_stream.ClipFolderStream, _stream.ClipFolderStream | None] | None = None  # data.stream

    # ------------------------------------------------------------------ data
    def setup(self) -> None:
        if self._ready:
            return
        o: AudioOptions = self.options
        if o.path is None:
            classes = o.notes + o.percussion
            self.train_waves, self.train_ids = synth.synthesize(classes, o.per_class, num_samples=o.num_samples, sample_rate=o.sample_rate, seed=o.seed)
            if o.val_per_class:
                # another seed: held-out clips are new draws of timbre, envelope and phase
                self.val_waves, self.val_ids = synth.synthesize(classes, o.val_per_class, num_samples=o.num_samples, sample_rate=o.sample_rate, seed=o.seed + 1_000_003)
            labels = classes
        else:
            from .data import list_folder, read_folder

            listing = list_folder(o.path)
            if _stream.choose(o.stream, len(listing), o.num_samples, self.codec.shape):
                return self._setup_stream(listing)
            found = read_folder(o.path, sample_rate=o.sample_rate, num_samples=o.num_samples, min_seconds=o.min_seconds, silence_db=o.silence_db, listing=listing)
            self.skipped = found.skipped
            labels = found.labels
            train, val = _split(found.class_ids, o.val_fraction)
            self.train_waves, self.val_waves = found.waves[train], (found.waves[val] if len(val) else None)
            ids = found.class_ids if labels is not None else None
            self.train_ids = ids[train] if ids is not None else None
            self.val_ids = ids[val] if (ids is not None and len(val)) else None
        self._take_labels(labels)
        if not self._restored:  # a run's stored statistics win over the data's
            self.codec.fit(self.train_waves)
        self.train_x = self.codec.encode(self.train_waves)
        self.val_x = self.codec.encode(self.val_waves) if self.val_waves is not None else None
        self._ready = True

    def _take_labels(self, labels: list[str] | None) -> None:
        if self._restored and labels != self._labels:
            raise UserError(
                f"data.path {self.options.path} now has the classes {labels}, but the run was trained on {self._labels}; "
                "restore the folder's subfolders or train a new run"
            )
        self._labels = labels

    def _setup_stream(self, listing) -> None:
        """Stream ``data.path`` (:mod:`.stream`): the same files, split and normalisation as
        the in-memory path; the waveforms are read only by :meth:`evaluate`."""
        o: AudioOptions = self.options
        self._take_labels(listing.labels)
        clip = {"sample_rate": o.sample_rate, "num_samples": o.num_samples, "min_seconds": o.min_seconds, "silence_db": o.silence_db}
        train, val = _split(torch.from_numpy(listing.ids), o.val_fraction)
        self.streams = _stream.open_folder(listing, train, val, self.codec, clip, fit=not self._restored)
        self._ready = True

    def _read_streamed(self) -> None:
        """At most :data:`~.stream.EVAL_CLIPS` clips of each split of a streamed folder, as
        the in-memory path's ``train_waves`` ... ``val_ids`` (what :meth:`evaluate` uses)."""
        if self.streams is not None and self.train_waves is None:
            self.train_waves, self.train_ids = self.streams[0].waves(_stream.EVAL_CLIPS)
            if self.streams[1] is not None:
                self.val_waves, self.val_ids = self.streams[1].waves(_stream.EVAL_CLIPS)

    def train_dataset(self) -> Dataset:
        self.setup()
        if self.streams is not None:
            return self.streams[0]
        return SpectrogramDataset(self.train_x, self.train_ids)

    def val_dataset(self) -> Dataset | None:
        self.setup()
        if self.streams is not None:
            return self.streams[1]
        return SpectrogramDataset(self.val_x, self.val_ids) if self.val_x is not None else None

    @property
    def labels(self) -> list[str] | None:
        return self._labels

    def state_dict(self) -> dict[str, Any]:
        o: AudioOptions = self.options
        return {
            **self.codec.state_dict(),
            "labels": self._labels,
            "sample_rate": o.sample_rate,
            "num_samples": o.num_samples,
            "n_mels": o.n_mels,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        o: AudioOptions = self.options
        for key, mine in (("sample_rate", o.sample_rate), ("num_samples", o.num_samples), ("n_mels", o.n_mels)):
            if key in state and state[key] != mine:
                raise UserError(f"domain_state.json: {key} = {state[key]} but the run's config says {mine}; the run directory is inconsistent")
        self.codec.load_state_dict(state)
        self._restored = True
        if "labels" in state:
            self._labels = list(state["labels"]) if state["labels"] is not None else None

    # ------------------------------------------------------------- sampling
    def _requests(self, num: int, classes: Sequence[int] | None) -> list[int | None]:
        ids = cycle_classes(num, classes if self._labels is not None else None, len(self._labels) if self._labels else None)
        return [None] * num if ids is None else ids

    def sample_batches(self, num: int, batch_size: int, classes: Sequence[int] | None = None, options=None) -> Iterable[dict]:
        """Batches of ``shape [b, n_mels, frames]``, ``cond`` (class ids) and ``labels``
        (names, for file names). Without ``classes``, a labelled domain cycles through all of
        its classes (a conditional model then plays every note and sound in turn)."""
        requests = self._requests(num, classes)
        for start in range(0, num, batch_size):
            chunk = requests[start : start + batch_size]
            batch: dict[str, Any] = {"shape": (len(chunk), *self.codec.shape), "index": start}
            if self._labels is not None:
                batch["cond"] = torch.tensor(chunk, dtype=torch.long)
                batch["labels"] = [self._labels[c] for c in chunk]
            else:
                batch["labels"] = ["sample"] * len(chunk)
            yield batch

    def decode(self, x: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """Generated spectrograms ``[B, n_mels, frames]`` -> waveforms ``[B, num_samples]``."""
        x = x.detach().float().cpu()
        return torch.cat([self.codec.decode(x[i : i + chunk]) for i in range(0, len(x), chunk)]) if len(x) else x.new_zeros(0, self.codec.num_samples)

    def write_samples(self, results: list[tuple[torch.Tensor, dict]], out_dir: Path, options=None, *,
                      waves: list[torch.Tensor] | None = None) -> list[Path]:
        """``NNNN_LABEL.wav`` (16-bit PCM at ``data.sample_rate``, ``data.clip_seconds`` long)
        and ``NNNN_LABEL.png`` (its spectrogram) per sample, plus ``spectrograms.png``, a grid
        of them all; when audio went beyond [-1, 1] (clipped in the WAV), ``clipping.json`` and
        one line on stderr. ``waves`` (one tensor per result): the audio, instead of decoding
        ``x``. The audio domain has no sample options."""
        from . import writer

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        c = self.codec
        paths, dbs, titles, clipped, k = [], [], [], {}, 0
        vmax = c.db_max if c.db_max is not None else 0.0
        vmin = vmax - c.dynamic_range_db
        for j, (x, batch) in enumerate(results):
            wave = self.decode(x) if waves is None else waves[j]
            db = c.denormalise(x.detach().float().cpu())
            labels = batch.get("labels") or ["sample"] * len(x)
            for i in range(len(x)):
                stem = f"{k:04d}_{writer.safe_name(labels[i])}"
                wav, png = out_dir / f"{stem}.wav", out_dir / f"{stem}.png"
                clipped[wav.name] = writer.write_wav(wav, wave[i], c.sample_rate)
                writer.write_spectrogram_png(png, db[i], sample_rate=c.sample_rate, hop_length=c.hop_length, title=labels[i], vmin=vmin, vmax=vmax)
                paths += [wav, png]
                dbs.append(db[i])
                titles.append(labels[i])
                k += 1
        if dbs:
            grid = out_dir / "spectrograms.png"
            writer.write_grid_png(grid, dbs[:64], titles[:64], sample_rate=c.sample_rate, hop_length=c.hop_length, vmin=vmin, vmax=vmax)
            paths.append(grid)
        record = writer.record_clipping(out_dir, clipped)
        return paths + ([record] if record else [])

    # -------------------------------------------------------------- editing
    def edit_batches(self, inputs: Sequence[str], num: int, batch_size: int, classes: Sequence[int] | None = None, options=None) -> list[dict]:
        """WAV files -> batches with ``known`` (the clip's normalised log-mel) and ``keep`` (mel
        frames of ``--keep START:END`` seconds, or all but ``--gap START:END``); see :mod:`.edit`."""
        from . import edit

        return edit.edit_batches(self, inputs, num, batch_size, classes, options)

    def write_edits(self, results: list[tuple[torch.Tensor, dict]], out_dir: Path) -> list[Path]:
        """WAVs holding the input's samples where kept, spectrogram PNGs and ``before_after.png``."""
        from . import edit

        return edit.write_edits(self, results, out_dir)

    # -------------------------------------------------------------- metrics
    def evaluate(self, sample_fn: Callable[[dict], torch.Tensor], num: int, out_dir: Path,
                 batch_size: int = 64) -> dict[str, float]:
        """Pitch accuracy of conditional samples (pitched classes) and the MFCC Fréchet
        distance to held-out clips, with its real-vs-real floor (see :mod:`.metrics`), from
        ``num`` samples generated ``batch_size`` at a time."""
        from . import metrics

        if num < 2:
            raise UserError(f"evaluate needs --num of at least 2 (a Fréchet distance compares two sets' covariances); got {num}")
        self.setup()
        self._read_streamed()
        if self.val_waves is None or len(self.val_waves) < 2:
            raise UserError("evaluate needs held-out clips: set data.val_per_class > 0 (embedded data) or data.val_fraction > 0 with a data.path of several files")
        c = self.codec
        xs, requested = [], []
        for batch in self.sample_batches(num, batch_size):
            xs.append(sample_fn(batch).detach().float().cpu())
            requested += batch.get("cond", torch.full((batch["shape"][0],), -1)).tolist()
        x = torch.cat(xs)
        gen = self.decode(x)
        out: dict[str, float] = {"num_samples": float(len(gen))}

        if self._labels is not None:
            hz = torch.tensor([synth.note_to_hz(self._labels[r]) or math.nan for r in requested], dtype=torch.float64)
            pitched = ~hz.isnan()
            if pitched.any():
                out.update(metrics.pitch_accuracy(gen[pitched], hz[pitched], c.sample_rate))
                out["pitch_num_samples"] = float(pitched.sum())

        # Fréchet distances of MFCC statistics. The reference is the held-out clips *as the
        # spectrogram codec renders them* (encode -> decode), and the floor compares as many
        # real training clips, rendered the same way: so the figure measures the generative
        # model, not the vocoder. The ``_raw`` figures compare with the untouched audio;
        # ``mfcc_frechet_roundtrip`` is then the vocoder's ceiling (real clips rendered).
        feats = metrics.MFCCFeatures(c)
        ref = self._matching_real(requested)  # as many real training clips, same classes
        f_gen = feats(gen)
        f_ref_rendered = feats(self.decode(c.encode(ref)))
        f_val_rendered = feats(self.decode(c.encode(self.val_waves)))
        f_val_raw = feats(self.val_waves)
        out["mfcc_frechet"] = metrics.frechet(f_gen, f_val_rendered)
        out["mfcc_frechet_floor"] = metrics.frechet(f_ref_rendered, f_val_rendered)
        out["mfcc_frechet_ratio"] = out["mfcc_frechet"] / max(out["mfcc_frechet_floor"], 1e-12)
        out["mfcc_frechet_raw"] = metrics.frechet(f_gen, f_val_raw)
        out["mfcc_frechet_raw_floor"] = metrics.frechet(feats(ref), f_val_raw)
        out["mfcc_frechet_roundtrip"] = metrics.frechet(f_ref_rendered, f_val_raw)
        out = {k: v for k, v in out.items() if math.isfinite(v)}  # JSON has no NaN

        self._write_eval_grid(x[:32], [self._labels[r] if self._labels and r >= 0 else "sample" for r in requested[:32]], Path(out_dir))
        return out

    def _matching_real(self, requested: list[int]) -> torch.Tensor:
        """Real training clips, one per request, of the requested class where labelled."""
        if self.train_ids is None or any(r < 0 for r in requested):
            idx = torch.arange(len(requested)) % len(self.train_waves)
            return self.train_waves[idx]
        pools = {c: (self.train_ids == c).nonzero()[:, 0].tolist() for c in set(requested)}
        used = {c: 0 for c in pools}
        idx = []
        for r in requested:
            pool = pools[r]
            idx.append(pool[used[r] % len(pool)])
            used[r] += 1
        return self.train_waves[torch.tensor(idx)]

    def _write_eval_grid(self, x: torch.Tensor, titles: list[str], out_dir: Path) -> None:
        from . import writer

        out_dir.mkdir(parents=True, exist_ok=True)
        c = self.codec
        db = c.denormalise(x)
        writer.write_grid_png(out_dir / "audio_spectrograms.png", list(db), titles, sample_rate=c.sample_rate,
                              hop_length=c.hop_length, vmin=c.db_max - c.dynamic_range_db, vmax=c.db_max)


def _split(ids: torch.Tensor, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic hold-out: every k-th file of each class (k = round(1 / val_fraction)),
    keeping at least one training file per class."""
    if val_fraction <= 0:
        return torch.arange(len(ids)), torch.zeros(0, dtype=torch.long)
    k = max(2, round(1 / val_fraction))
    train, val = [], []
    for c in ids.unique().tolist():
        members = (ids == c).nonzero()[:, 0].tolist()
        for j, i in enumerate(members):
            (val if (j % k == k - 1 and len(members) > 1) else train).append(i)
    return torch.tensor(sorted(train), dtype=torch.long), torch.tensor(sorted(val), dtype=torch.long)
