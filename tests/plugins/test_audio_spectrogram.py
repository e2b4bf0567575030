"""The audio plugin's signal path: synthesized data, the log-mel codec, pitch estimation and
the metrics (no training)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torchaudio")

import torch  # noqa: E402

from diffcore_audio import metrics, synth  # noqa: E402
from diffcore_audio.domain import AudioDomain, AudioOptions  # noqa: E402
from diffcore_audio.pitch import cents, estimate_pitch  # noqa: E402
from diffcore_audio.spectrogram import MelCodec  # noqa: E402

SR = 16000
N = 8000  # 0.5 s, the default clip


def test_note_names():
    assert synth.note_to_midi("A4") == 69 and synth.note_to_hz("A4") == 440.0
    assert synth.note_to_midi("C4") == 60 and synth.note_to_midi("Bb3") == synth.note_to_midi("A#3") == 58
    assert synth.note_to_midi("kick") is None and synth.note_to_midi("H2") is None
    assert synth.midi_to_note(61) == "C#4"
    assert all(synth.note_to_midi(synth.midi_to_note(m)) == m for m in range(24, 108))


@pytest.mark.parametrize("hz", [65.0, 131.0, 220.0, 523.25, 987.0])
def test_yin_finds_the_pitch_of_a_sawtooth(hz):
    t = torch.arange(N, dtype=torch.float64) / SR
    k = torch.arange(1, int(0.45 * SR / hz) + 1, dtype=torch.float64)
    saw = (torch.sin(2 * math.pi * hz * k[:, None] * t) / k[:, None]).sum(0)
    est = estimate_pitch(saw[None].float(), SR)
    assert abs(float(cents(est, torch.tensor([hz])))) < 10  # YIN with parabolic interpolation: a few cents


@pytest.mark.parametrize("n", [800, 1600, 2047])
def test_yin_handles_clips_shorter_than_its_analysis_frame(n):
    # a 0.05-0.13 s clip (data.clip_seconds may be that short) is padded, not a crash
    t = torch.arange(n, dtype=torch.float64) / SR
    saw = sum(torch.sin(2 * math.pi * 440.0 * k * t) / k for k in range(1, 8))
    est = estimate_pitch(saw[None].float(), SR)
    assert abs(float(cents(est, torch.tensor([440.0])))) < 10


def test_pitch_of_noise_and_silence_is_a_miss():
    g = torch.Generator().manual_seed(0)
    waves = torch.stack([torch.zeros(N), 0.1 * torch.randn(N, generator=g)])
    acc = metrics.pitch_accuracy(waves, torch.tensor([220.0, 220.0], dtype=torch.float64), SR)
    assert acc["pitch_accuracy"] == 0.0


def test_default_data_is_deterministic():
    classes = ["C3", "A#4", "kick", "snare", "hihat"]
    a, ia = synth.synthesize(classes, 2, num_samples=N, sample_rate=SR, seed=5)
    b, ib = synth.synthesize(classes, 2, num_samples=N, sample_rate=SR, seed=5)
    c, _ = synth.synthesize(classes, 2, num_samples=N, sample_rate=SR, seed=6)
    assert torch.equal(a, b) and torch.equal(ia, ib)
    assert not torch.equal(a, c)
    assert ia.tolist() == [0, 1, 2, 3, 4] * 2
    peaks = a.abs().amax(-1)
    assert (peaks <= 10 ** (-1 / 20) + 1e-6).all() and (peaks >= 10 ** (-12 / 20) - 1e-6).all()
    # a checksum pinned once: a change to the synthesis (a new default data set) must be deliberate
    assert a.double().abs().sum().item() == pytest.approx(6605.0494475, rel=1e-6)


def test_domain_setup_is_deterministic_and_labelled():
    opts = AudioOptions(notes=["C3", "E4"], percussion=["kick"], per_class=2, val_per_class=1)
    d1, d2 = AudioDomain(opts), AudioDomain(opts)
    d1.setup()
    d2.setup()
    assert d1.labels == ["C3", "E4", "kick"]
    assert torch.equal(d1.train_x, d2.train_x)
    item = d1.train_dataset()[4]
    assert item["x"].shape == (64, 32) and int(item["cond"]) == 1
    assert d1.train_x.min() >= -1 and d1.train_x.max() == 1.0  # the loudest bin maps to 1
    # held-out clips are new draws, not copies of training clips
    assert not any(torch.equal(v, t) for v in d1.val_waves for t in d1.train_waves)


@pytest.mark.parametrize("note", ["C3", "A3", "F#4", "C5"])
def test_encode_decode_keeps_the_pitch_of_synthetic_notes(note):
    waves, _ = synth.synthesize([note], 3, num_samples=N, sample_rate=SR, seed=1)
    codec = MelCodec(sample_rate=SR, num_samples=N)
    codec.fit(waves)
    back = codec.decode(codec.encode(waves))
    assert back.shape == waves.shape
    err = cents(estimate_pitch(back, SR), torch.tensor([synth.note_to_hz(note)] * 3))
    assert (err.abs() < 25).all(), err  # the metric's tolerance is 50 cents
    # and the spectrogram survives: the mel-domain error of the round trip is a few dB
    # (about 15 dB with InverseMelScale alone, without the non-negative refinement)
    d0, d1 = codec.db(waves), codec.db(back)
    top = d0.amax((-1, -2), keepdim=True)
    lsd = ((d0.clamp(min=top - 80) - d1.clamp(min=top - 80)) ** 2).mean(-2).sqrt().mean()
    assert lsd < 9.0


def test_codec_normalisation_round_trips_through_the_state_dict():
    waves, _ = synth.synthesize(["A3", "snare"], 2, num_samples=N, sample_rate=SR, seed=2)
    c1 = MelCodec(num_samples=N)
    c1.fit(waves)
    x = c1.encode(waves)
    assert x.max() == 1.0 and x.min() >= -1.0
    c2 = MelCodec(num_samples=N)
    c2.load_state_dict(c1.state_dict())
    assert torch.equal(c2.encode(waves), x)
    db = c1.db(waves)
    top = c1.db_max
    keep = db > top - c1.dynamic_range_db
    assert torch.allclose(c1.denormalise(x)[keep], db[keep], atol=1e-3)


def test_domain_state_restores_labels_without_data():
    opts = AudioOptions(notes=["D3"], percussion=["hihat"], per_class=1, val_per_class=0)
    d = AudioDomain(opts)
    d.setup()
    fresh = AudioDomain(opts)
    fresh.load_state_dict(d.state_dict())
    assert fresh.labels == ["D3", "hihat"] and fresh.codec.db_max == d.codec.db_max
    batches = list(fresh.sample_batches(5, 2, classes=[1]))
    assert [b["shape"] for b in batches] == [(2, 64, 32), (2, 64, 32), (1, 64, 32)]
    assert sum((b["labels"] for b in batches), []) == ["hihat"] * 5
    assert torch.cat([b["cond"] for b in batches]).tolist() == [1] * 5
    # without --class every label is played in turn
    assert next(iter(fresh.sample_batches(4, 4)))["labels"] == ["D3", "hihat", "D3", "hihat"]


def test_frechet_distance_is_zero_for_the_same_set_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=g, dtype=torch.float64)
    b = torch.randn(400, 6, generator=g, dtype=torch.float64)
    assert metrics.frechet(a, a) == pytest.approx(0.0, abs=1e-6)
    same = metrics.frechet(a, b)
    # sampling noise of the estimate: roughly D (D + 1) / N = 0.1 here
    assert same < 0.3
    assert metrics.frechet(a, b + 1.0) == pytest.approx(6.0 + same, abs=0.4)  # ||mu||^2 = 6


def test_bad_options_are_refused_with_the_reason():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not a note name"):
        AudioOptions(notes=["H3"])
    with pytest.raises(ValidationError, match="unknown percussion"):
        AudioOptions(percussion=["cowbell"])
    with pytest.raises(ValidationError, match="above half the sample rate"):
        AudioOptions(f_max=9000)
    with pytest.raises(ValidationError, match="shorter than one STFT window"):
        AudioOptions(clip_seconds=0.01)
