"""The embedded default data set: synthesized instrument notes, generated offline and
deterministically (nothing is downloaded).

Every clip is one sound of a class:

- a *pitched note* (class = its note name, e.g. ``"A3"``): a sum of harmonics k f0, k = 1..K
  (below 0.45 of the sample rate, so nothing aliases), with a timbre drawn from five families
  (organ, pluck, reed, flute, brass: which harmonics are present and how their amplitudes
  fall or peak with k, and for the pluck, higher harmonics dying faster, as in a string), a
  random spectral tilt, an ADSR envelope, a slight vibrato (at most 15 cents, so the pitch
  label stays exact within the 50-cent tolerance of the metric), random phases and gain;
- a *percussive sound* (class ``"kick"``, ``"snare"`` or ``"hihat"``): a downward sine sweep
  with a fast decay, a short tone plus band-limited noise, or high-passed noise.

The same seed gives the same waveforms, bit for bit, on any machine (one ``torch.Generator``
drawn in a fixed order, float64 arithmetic).
"""

from __future__ import annotations

import math
import re

import torch

F64 = torch.float64

TIMBRES = ("organ", "pluck", "reed", "flute", "brass")
PERCUSSION = ("kick", "snare", "hihat")
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_NOTE_RE = re.compile(r"^([A-Ga-g])([#b]?)(-?\d)$")
_FLAT = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E"}


def note_to_midi(name: str) -> int | None:
    """MIDI number of a note name such as ``"A4"`` (69), ``"C#3"``, ``"Bb2"``; ``None`` if
    ``name`` is not a note name."""
    m = _NOTE_RE.match(name.strip())
    if not m:
        return None
    letter, accidental, octave = m.group(1).upper(), m.group(2), int(m.group(3))
    pc = NOTE_NAMES.index(letter) + {"": 0, "#": 1, "b": -1}[accidental]
    return 12 * (octave + 1) + pc


def note_to_hz(name: str) -> float | None:
    """Equal-tempered frequency (A4 = 440 Hz) of a note name, ``None`` if it is not one."""
    midi = note_to_midi(name)
    return None if midi is None else 440.0 * 2.0 ** ((midi - 69) / 12)


def midi_to_note(midi: int) -> str:
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def default_notes() -> list[str]:
    """Two octaves of the whole-tone scale, C3 (131 Hz) to C5 (523 Hz): 13 notes, 200 cents
    apart, so a note generated within 50 cents of its label is unambiguous."""
    return [midi_to_note(m) for m in range(48, 73, 2)]


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=F64))


def _adsr(n: int, sr: int, attack: float, decay: float, sustain: float, release: float) -> torch.Tensor:
    t = torch.arange(n, dtype=F64) / sr
    dur = n / sr
    env = torch.where(t < attack, t / attack, sustain + (1 - sustain) * torch.exp(-(t - attack) / decay))
    return env * torch.clamp((dur - t) / release, 0.0, 1.0)  # linear release to 0 at the end


def _harmonic_amplitudes(timbre: str, k: torch.Tensor, tilt: float, g: torch.Generator) -> torch.Tensor:
    if timbre == "organ":
        amp = k ** -tilt * torch.where(k % 2 == 0, torch.full_like(k, _u(g, 0.3, 0.8)), torch.ones_like(k))
    elif timbre == "pluck":
        amp = k ** -tilt
    elif timbre == "reed":  # odd harmonics dominate (a closed cylindrical bore)
        amp = k ** -tilt * torch.where(k % 2 == 0, torch.full_like(k, _u(g, 0.02, 0.15)), torch.ones_like(k))
    elif timbre == "flute":  # nearly sinusoidal: a steep fall-off
        amp = k ** -(2.0 * tilt + 0.8)
    elif timbre == "brass":  # a formant-like peak around the 3rd-5th harmonic
        peak = _u(g, 2.5, 5.0)
        amp = torch.exp(-((torch.log(k) - math.log(peak)) ** 2) / (2 * 0.6**2)) * k ** -(0.3 * tilt)
    else:  # pragma: no cover - guarded by TIMBRES
        raise ValueError(timbre)
    return amp


def synth_note(freq: float, num_samples: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """One pitched note at ``freq`` Hz with a random timbre and envelope (float64 waveform)."""
    sr, n = sample_rate, num_samples
    timbre = TIMBRES[int(torch.randint(len(TIMBRES), (), generator=g))]
    t = torch.arange(n, dtype=F64) / sr
    k = torch.arange(1, int(0.45 * sr / freq) + 1, dtype=F64)
    k = k[: 40]
    tilt = _u(g, 0.7, 1.6)
    amp = _harmonic_amplitudes(timbre, k, tilt, g)
    phases = 2 * math.pi * torch.rand(len(k), generator=g, dtype=F64)
    # vibrato: a slow sinusoidal pitch wobble of at most 15 cents
    depth_cents, rate = _u(g, 0.0, 15.0), _u(g, 4.0, 6.5)
    inst = freq * 2.0 ** (depth_cents / 1200 * torch.sin(2 * math.pi * rate * t))
    phase = 2 * math.pi * torch.cumsum(inst, 0) / sr
    partials = torch.sin(k[:, None] * phase[None] + phases[:, None]) * amp[:, None]
    if timbre == "pluck":  # a string: higher harmonics decay faster
        tau = _u(g, 0.3, 0.9)
        partials = partials * torch.exp(-t[None] * k[:, None] ** 0.7 / tau)
        env = _adsr(n, sr, _u(g, 0.002, 0.01), 10.0, 1.0, 0.03)
    else:
        env = _adsr(n, sr, _u(g, 0.01, 0.12), _u(g, 0.05, 0.4), _u(g, 0.4, 1.0), _u(g, 0.05, 0.2))
    wave = partials.sum(0) * env
    if timbre == "flute":  # breath: a little noise following the envelope
        wave = wave + _u(g, 0.005, 0.03) * torch.randn(n, generator=g, dtype=F64) * env
    return wave


def _bandpass_noise(n: int, sr: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    spec = torch.fft.rfft(torch.randn(n, generator=g, dtype=F64))
    f = torch.fft.rfftfreq(n, 1 / sr, dtype=F64)
    spec = spec * ((f >= lo) & (f <= hi))
    noise = torch.fft.irfft(spec, n)
    return noise / noise.std().clamp(min=1e-12)


def synth_percussion(kind: str, num_samples: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """One percussive sound (``"kick"``, ``"snare"`` or ``"hihat"``) as a float64 waveform."""
    sr, n = sample_rate, num_samples
    t = torch.arange(n, dtype=F64) / sr
    onset = torch.clamp(t / 0.002, max=1.0)
    if kind == "kick":  # a sine sweeping down from ~150 Hz to ~50 Hz
        f_hi, f_lo, sweep = _u(g, 120, 180), _u(g, 40, 60), _u(g, 0.02, 0.06)
        inst = f_lo + (f_hi - f_lo) * torch.exp(-t / sweep)
        wave = torch.sin(2 * math.pi * torch.cumsum(inst, 0) / sr) * torch.exp(-t / _u(g, 0.12, 0.3))
    elif kind == "snare":  # a short tone plus noise in the mid band
        tone = torch.sin(2 * math.pi * _u(g, 170, 230) * t) * torch.exp(-t / _u(g, 0.03, 0.06))
        noise = _bandpass_noise(n, sr, _u(g, 800, 1500), _u(g, 5000, 7000), g) * torch.exp(-t / _u(g, 0.08, 0.18))
        wave = _u(g, 0.4, 0.8) * tone + _u(g, 0.3, 0.5) * noise
    elif kind == "hihat":  # high-passed noise, very short
        wave = 0.4 * _bandpass_noise(n, sr, _u(g, 5000, 7000), 0.49 * sr, g) * torch.exp(-t / _u(g, 0.02, 0.08))
    else:
        raise ValueError(f"unknown percussion {kind!r}; choose from {', '.join(PERCUSSION)}")
    return wave * onset


def synthesize(
    classes: list[str],
    per_class: int,
    *,
    num_samples: int,
    sample_rate: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` clips of each class (a note name or a percussion name), interleaved by
    class. Returns ``(waves [N, num_samples] float32, class ids [N])``; peaks are scaled to
    a random level between -12 and -1 dBFS. Deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    waves, ids = [], []
    for _ in range(per_class):
        for cid, name in enumerate(classes):
            freq = note_to_hz(name)
            if freq is not None:
                w = synth_note(freq, num_samples, sample_rate, g)
            else:
                w = synth_percussion(name, num_samples, sample_rate, g)
            peak_db = _u(g, -12.0, -1.0)
            w = w / w.abs().max().clamp(min=1e-12) * 10 ** (peak_db / 20)
            waves.append(w.float())
            ids.append(cid)
    return torch.stack(waves), torch.tensor(ids, dtype=torch.long)
