"""The audio plugin's file handling: folders of audio files in, WAV/PNG files out."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("torchaudio")
sf = pytest.importorskip("soundfile")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from diffcore.errors import UserError  # noqa: E402
from diffcore_audio.data import read_folder  # noqa: E402
from diffcore_audio.domain import AudioDomain, AudioOptions  # noqa: E402
from diffcore_audio.pitch import estimate_pitch  # noqa: E402

SR = 16000


def tone(hz: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * math.pi * hz * t)).astype(np.float32)


def make_folder(root, *, labelled: bool):
    """Three good files (one at 22.05 kHz, one stereo FLAC, one shorter than a clip) and
    three bad ones: a corrupt WAV, a silent WAV, a WAV shorter than data.min_seconds."""
    def where(label):
        d = root / label if labelled else root
        d.mkdir(parents=True, exist_ok=True)
        return d

    sf.write(where("A3") / "a3.wav", tone(220, 0.6, SR), SR)
    sf.write(where("A3") / "a3_22k.wav", tone(220, 0.6, 22050), 22050)
    sf.write(where("E4") / "e4_stereo.flac", np.stack([tone(329.63, 0.7, SR)] * 2, axis=1), SR, subtype="PCM_16")
    sf.write(where("E4") / "e4_short.wav", tone(329.63, 0.3, SR), SR)
    (where("E4") / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" + bytes(200))
    sf.write(where("A3") / "silent.wav", np.zeros(SR // 2, dtype=np.float32), SR)
    sf.write(where("A3") / "blip.wav", tone(220, 0.01, SR), SR)
    (where("A3") / "notes.txt").write_text("not audio, ignored by extension")


def test_folder_keeps_the_good_files_and_names_the_bad_ones(tmp_path, capsys):
    make_folder(tmp_path, labelled=True)
    found = read_folder(tmp_path, sample_rate=SR, num_samples=SR // 2, min_seconds=0.05, silence_db=-60)
    err = capsys.readouterr().err
    assert found.labels == ["A3", "E4"]
    assert sorted(p.name for p in found.files) == ["a3.wav", "a3_22k.wav", "e4_short.wav", "e4_stereo.flac"]
    assert found.waves.shape == (4, SR // 2) and found.class_ids.tolist() == [0, 0, 1, 1]
    reasons = {p.name: r for p, r in found.skipped}
    assert set(reasons) == {"corrupt.wav", "silent.wav", "blip.wav"}
    assert reasons["corrupt.wav"].startswith("unreadable") and reasons["silent.wav"].startswith("silent")
    assert reasons["blip.wav"].startswith("too short")
    for name in ("corrupt.wav", "silent.wav", "blip.wav"):
        assert name in err
    assert "skipped 3 file(s)" in err and "1 resampled" in err and "1 padded" in err and "3 cut" in err
    # resampled to the configured rate: the 22.05 kHz file keeps its pitch
    i = [p.name for p in found.files].index("a3_22k.wav")
    assert abs(1200 * math.log2(float(estimate_pitch(found.waves[i : i + 1], SR)) / 220)) < 10
    # padded with silence at the end
    j = [p.name for p in found.files].index("e4_short.wav")
    assert found.waves[j, int(0.31 * SR) :].abs().max() == 0


def test_unlabelled_folder_and_its_domain(tmp_path):
    make_folder(tmp_path, labelled=False)
    d = AudioDomain(AudioOptions(path=str(tmp_path), val_fraction=0.25))
    d.setup()
    assert d.labels is None
    assert len(d.train_dataset()) + len(d.val_dataset()) == 4
    assert "cond" not in d.train_dataset()[0]
    batch = next(iter(d.sample_batches(3, 8)))
    assert "cond" not in batch and batch["shape"] == (3, 64, 32)


@pytest.mark.parametrize("case, words", [
    ("missing", "does not exist"),
    ("file", "is a file, not a folder"),
    ("empty", "no audio files"),
    ("all-bad", "none of the 2 audio file(s)"),
])
def test_unusable_folders_are_a_user_error_naming_them(tmp_path, case, words):
    path = tmp_path / "data"
    if case == "file":
        path.write_text("x")
    elif case == "empty":
        path.mkdir()
        (path / "readme.txt").write_text("no audio here")
    elif case == "all-bad":
        path.mkdir()
        (path / "x.wav").write_bytes(b"garbage")
        sf.write(path / "quiet.wav", np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(UserError) as e:
        AudioDomain(AudioOptions(path=str(path))).setup()
    assert words in str(e.value) and str(path) in str(e.value)


def test_written_wavs_read_back_at_the_configured_rate_and_length(tmp_path):
    opts = AudioOptions(sample_rate=8000, clip_seconds=0.4, n_fft=512, hop_length=128, n_mels=32,
                        notes=["A3"], percussion=["kick"], per_class=1, val_per_class=0, griffin_lim_iters=4)
    d = AudioDomain(opts)
    d.setup()
    batches = list(d.sample_batches(3, 2))
    results = [(torch.rand(b["shape"]) * 2 - 1, b) for b in batches]
    paths = d.write_samples(results, tmp_path)
    wavs = sorted(p for p in paths if p.suffix == ".wav")
    assert [p.name for p in wavs] == ["0000_A3.wav", "0001_kick.wav", "0002_A3.wav"]
    for p in wavs:
        info = sf.info(str(p))
        assert info.samplerate == 8000 and info.frames == 3200 and info.channels == 1
        assert p.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "spectrograms.png").is_file()


def test_clipped_wavs_are_counted_recorded_and_reported_in_one_line(tmp_path, capfd):
    opts = AudioOptions(sample_rate=8000, clip_seconds=0.2, n_fft=256, hop_length=128, n_mels=16,
                        notes=["A3"], percussion=[], per_class=1, val_per_class=0, griffin_lim_iters=2)
    d = AudioDomain(opts)
    d.setup()
    (b,) = d.sample_batches(3, 4)
    waves = torch.zeros(3, 1600)
    waves[0, :10] = 1.7  # 10 samples over range, peak 1.7
    waves[1, 5] = -1.25  # 1 sample under -1
    waves[2] = 0.5 * torch.sin(torch.arange(1600) / 5.0)  # within range
    paths = d.write_samples([(torch.zeros(b["shape"]), b)], tmp_path / "out", None, waves=[waves])
    lines = [ln for ln in capfd.readouterr().err.splitlines() if "clipped" in ln]
    assert len(lines) == 1
    assert "2 of 3 clips exceeded [-1, 1]" in lines[0] and "11 samples" in lines[0] and "1.70" in lines[0]
    record = json.loads((tmp_path / "out" / "clipping.json").read_text())
    assert tmp_path / "out" / "clipping.json" in paths
    assert record["clipped_clips"] == 2 and record["clipped_samples"] == 11 and record["clips"] == 3
    assert record["files"]["0000_A3.wav"] == {"clipped_samples": 10, "max_abs": 1.7}
    assert "0002_A3.wav" not in record["files"]
    data, _ = sf.read(str(tmp_path / "out" / "0000_A3.wav"))
    assert data.max() == pytest.approx(1.0, abs=1e-4)  # clipped, not wrapped
    # nothing over range: no note and no record
    d.write_samples([(torch.zeros(b["shape"]), b)], tmp_path / "quiet", None, waves=[waves.clamp(-1, 1)])
    assert "clipped" not in capfd.readouterr().err and not (tmp_path / "quiet" / "clipping.json").exists()


def test_class_names_with_symbols_make_safe_file_names(tmp_path):
    from diffcore_audio.writer import safe_name

    assert safe_name("C#4") == "Cs4" and safe_name("snare/rim shot") == "snare_rim_shot"
