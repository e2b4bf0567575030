"""Streaming an audio folder from disk (data.stream): the same spectrograms as the in-memory
path, through worker processes, with clear messages for unusable files."""

from __future__ import annotations

import math
import pickle

import pytest

pytest.importorskip("torchaudio")
sf = pytest.importorskip("soundfile")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from diffcore.errors import UserError  # noqa: E402
from diffcore_audio import stream  # noqa: E402
from diffcore_audio.domain import AudioDomain, AudioOptions, SpectrogramDataset  # noqa: E402
from stream_checks import same_batches, stop_message  # noqa: E402

SR = 8000


def _tone(hz: float, seconds: float, rate: int, amp: float) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * math.pi * hz * t)).astype(np.float32)


def _folder(root, per_class: int = 4):
    """Two classes of usable files: other rates, stereo, shorter and longer than a clip."""
    for c, hz in (("A3", 220.0), ("E4", 329.63)):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            rate = SR if i % 2 else 11025
            wave = _tone(hz * (1 + 0.01 * i), 0.2 + 0.15 * i, rate, 0.2 + 0.1 * i)
            sf.write(root / c / f"{i}.wav", np.stack([wave, wave], 1) if i == 1 else wave, rate)
    return root


def _domain(path, **kw) -> AudioDomain:
    d = AudioDomain(AudioOptions(path=str(path), sample_rate=SR, clip_seconds=0.25, n_fft=256, hop_length=64, n_mels=16, **kw))
    d.setup()
    return d


def test_streamed_spectrograms_equal_the_in_memory_ones(tmp_path):
    _folder(tmp_path / "wavs")
    memory, streamed = (_domain(tmp_path / "wavs", stream=s, val_fraction=0.25) for s in (False, True))  # 1 in 4 held out
    assert isinstance(streamed.train_dataset(), stream.ClipFolderStream)
    assert isinstance(memory.train_dataset(), SpectrogramDataset)
    assert streamed.labels == memory.labels == ["A3", "E4"]
    assert streamed.codec.db_max == pytest.approx(memory.codec.db_max, abs=1e-5)  # fewer files than FIT_FILES: all of them
    for a, b in ((memory.train_dataset(), streamed.train_dataset()), (memory.val_dataset(), streamed.val_dataset())):
        assert len(a) == len(b) > 0
        for i in range(len(a)):
            x, y = a[i], b[i]
            assert y["x"].shape == x["x"].shape and torch.allclose(x["x"], y["x"], atol=1e-5)
            assert torch.equal(x["cond"], y["cond"])
    # what evaluate reads: the same clips
    streamed._read_streamed()
    assert torch.equal(streamed.train_waves, memory.train_waves) and torch.equal(streamed.val_ids, memory.val_ids)


def test_workers_yield_the_same_batches_and_the_dataset_pickles(tmp_path):
    _folder(tmp_path / "wavs")
    ds = _domain(tmp_path / "wavs", stream=True, val_fraction=0).train_dataset()
    assert same_batches(ds, 3) == 3
    assert torch.equal(pickle.loads(pickle.dumps(ds))[2]["x"], ds[2]["x"])  # the codec travels with it


def test_auto_streams_above_the_thresholds(tmp_path, monkeypatch):
    _folder(tmp_path / "wavs")
    assert isinstance(_domain(tmp_path / "wavs").train_dataset(), SpectrogramDataset)
    monkeypatch.setattr(stream, "STREAM_FILES", 7)
    assert isinstance(_domain(tmp_path / "wavs").train_dataset(), stream.ClipFolderStream)
    monkeypatch.setattr(stream, "STREAM_FILES", 100)
    monkeypatch.setattr(stream, "STREAM_BYTES", 100_000)  # 8 files x 4 bytes x (2 x 2000 samples + 16 x 32 bins)
    assert isinstance(_domain(tmp_path / "wavs").train_dataset(), stream.ClipFolderStream)


@pytest.mark.parametrize("bad, reason", [(b"RIFF\x00\x00\x00\x00WAVEnot audio" + bytes(100), "unreadable"), (None, "silent")])
def test_an_unusable_file_read_before_training_is_one_message_naming_it(tmp_path, bad, reason):
    _folder(tmp_path / "wavs")
    path = tmp_path / "wavs" / "E4" / "9.wav"
    path.write_bytes(bad) if bad else sf.write(path, np.zeros(SR // 4, np.float32), SR)
    with pytest.raises(UserError, match=rf"{path} is {reason} .*found before training.*data\.stream: false"):
        _domain(tmp_path / "wavs", stream=True, val_fraction=0)
    assert len(_domain(tmp_path / "wavs", stream=False, val_fraction=0).train_dataset()) == 8  # skipped up front


@pytest.mark.parametrize("workers", [0, 2])
def test_a_file_broken_mid_training_stops_with_its_name(tmp_path, workers):
    broken = _folder(tmp_path / "wavs") / "A3" / "2.wav"
    text = stop_message(_domain(tmp_path / "wavs", stream=True, val_fraction=0).train_dataset(), broken, stream.UnusableClip, workers)
    assert text.startswith(f"data.path: {broken} is unreadable") and "while streaming" in text and "--resume" in text


def test_a_restored_run_keeps_its_statistics(tmp_path):
    _folder(tmp_path / "wavs")
    state = _domain(tmp_path / "wavs", stream=True).state_dict()
    d = AudioDomain(AudioOptions(path=str(tmp_path / "wavs"), sample_rate=SR, clip_seconds=0.25, n_fft=256, hop_length=64,
                                 n_mels=16, stream=True))
    d.load_state_dict({**state, "db_max": state["db_max"] + 3.0})
    d.setup()
    assert d.codec.db_max == state["db_max"] + 3.0
    d.load_state_dict({**state, "labels": ["A3", "B3"]})
    d._ready = False
    with pytest.raises(UserError, match="now has the classes"):
        d.setup()
