"""The audio-spectrogram recipe end to end through the CLI on tiny settings:
train -> sample (--class) -> evaluate on the embedded data, and training on a folder with a
corrupt file."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torchaudio")
sf = pytest.importorskip("soundfile")

from typer.testing import CliRunner  # noqa: E402

from diffcore.cli import app  # noqa: E402

TINY = [
    "--set", "training.max_steps=3", "--set", "training.batch_size=4", "--set", "training.preview_num=2",
    "--set", "training.checkpoint_every=0", "--set", "sampling.steps=3",
    "--set", "backbone.base_channels=16", "--set", "backbone.channel_mult=[1,2]", "--set", "backbone.num_res_blocks=1",
    "--set", "backbone.attention_levels=[1]",
    "--set", "data.griffin_lim_iters=4", "--set", "data.inverse_mel_iters=4", "--no-progress",
]
EMBEDDED = ["--set", "data.notes=[A3,E4]", "--set", "data.percussion=[kick]", "--set", "data.per_class=2", "--set", "data.val_per_class=2"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("audiorun") / "run"
    res = invoke("train", "--plugin", "audio-spectrogram", "--out", str(run), *EMBEDDED, *TINY)
    assert res.exit_code == 0, res.output
    return run


def test_train_writes_the_run_and_wav_previews(run):
    for name in ("config.yaml", "domain_state.json", "ema.safetensors"):
        assert (run / name).is_file(), name
    state = json.loads((run / "domain_state.json").read_text())
    assert state["labels"] == ["A3", "E4", "kick"] and state["db_max"] > 0
    previews = sorted((run / "previews").rglob("*.wav"))
    assert [p.name for p in previews] == ["0000_A3.wav", "0001_E4.wav"]


def test_sample_class_writes_wavs_and_pngs(run, tmp_path):
    out = tmp_path / "s"
    res = invoke("sample", "--run", str(run), "--num", "3", "--class", "kick", "--class", "E4", "--steps", "2", "--out", str(out))
    assert res.exit_code == 0, res.output
    wavs = sorted(out.glob("*.wav"))
    assert [p.name for p in wavs] == ["0000_kick.wav", "0001_E4.wav", "0002_kick.wav"]
    for p in wavs:
        info = sf.info(str(p))
        assert info.samplerate == 16000 and info.frames == 8000
        assert p.with_suffix(".png").is_file()
    assert (out / "spectrograms.png").is_file()
    res = invoke("sample", "--run", str(run), "--class", "B9", "--out", str(tmp_path / "bad"))
    assert res.exit_code == 2 and "A3, E4, kick" in res.output


def test_evaluate_reports_pitch_and_frechet(run):
    res = invoke("evaluate", "--run", str(run), "--num", "6", "--steps", "2")
    assert res.exit_code == 0, res.output
    m = json.loads((run / "metrics.json").read_text())
    for key in ("mfcc_frechet", "mfcc_frechet_floor", "mfcc_frechet_ratio", "mfcc_frechet_raw", "mfcc_frechet_roundtrip", "pitch_accuracy"):
        assert key in m, key
    assert 0.0 <= m["pitch_accuracy"] <= 1.0 and m["pitch_num_samples"] == 4  # A3, E4 of 6 cycled classes
    assert m["mfcc_frechet_floor"] >= 0 and m["mfcc_frechet"] > 0
    assert (run / "eval" / "audio_spectrograms.png").is_file()


def test_clips_shorter_than_the_pitch_frame_train_sample_and_evaluate(tmp_path):
    # 0.1 s = 1600 samples, less than the pitch estimator's 2048-sample analysis frame
    run = tmp_path / "short"
    res = invoke("train", "--plugin", "audio-spectrogram", "--out", str(run), *EMBEDDED, *TINY, "--set", "data.clip_seconds=0.1")
    assert res.exit_code == 0, res.output
    res = invoke("evaluate", "--run", str(run), "--num", "6", "--steps", "2")
    assert res.exit_code == 0, res.output
    m = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= m["pitch_accuracy"] <= 1.0 and m["pitch_num_samples"] == 4
    assert sf.info(str(sorted((run / "previews").rglob("*.wav"))[0])).frames == 1600


def test_a_folder_with_a_corrupt_file_trains_on_the_rest(tmp_path):
    import numpy as np

    data = tmp_path / "clips"
    data.mkdir()
    t = np.arange(8000) / 16000
    for i, hz in enumerate((220.0, 330.0, 440.0, 550.0)):
        sf.write(data / f"tone{i}.wav", (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 16000)
    (data / "broken.wav").write_bytes(b"this is not a wav file")
    run = tmp_path / "run"
    res = invoke("train", "--plugin", "audio-spectrogram", "--out", str(run), "--set", f"data.path={data}", *TINY)
    assert res.exit_code == 0, res.output
    assert "broken.wav" in res.output and "skipped 1 file(s)" in res.output
    assert json.loads((run / "domain_state.json").read_text())["labels"] is None
    # the run samples without its data: the normalisation comes from domain_state.json
    for p in data.iterdir():
        p.unlink()
    data.rmdir()
    res = invoke("sample", "--run", str(run), "--num", "2", "--steps", "2", "--out", str(tmp_path / "s"))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "s").glob("*.wav")) == ["0000_sample.wav", "0001_sample.wav"]


def test_a_folder_with_nothing_usable_is_one_clear_error(tmp_path):
    data = tmp_path / "clips"
    data.mkdir()
    (data / "a.wav").write_bytes(b"junk")
    res = invoke("train", "--plugin", "audio-spectrogram", "--out", str(tmp_path / "run"), "--set", f"data.path={data}", *TINY)
    assert res.exit_code == 2
    assert str(data) in res.output and "a.wav" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run" / "config.yaml").exists()


def _leaves(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and k != "schedule_options":
            out |= _leaves(v, key + ".")
        else:
            out.add(key)
    return out


def test_config_file_lists_every_option_with_its_default_value():
    from pathlib import Path

    import yaml

    from diffcore.config import RunConfig, resolve
    from diffcore.registry import get_registry

    path = Path(__file__).parents[2] / "configs" / "audio-spectrogram.yaml"
    recipe = get_registry().recipe("audio-spectrogram")
    assert (recipe.domain, recipe.backbone) == ("audio", "spec-unet1d")
    text = path.read_text()
    defaults = resolve("audio-spectrogram")
    assert resolve(config_file=path).config == defaults.config  # the file restates the defaults
    raw = yaml.safe_load(text)
    assert _leaves(raw) == _leaves(defaults.config.model_dump(mode="json"))
    assert set(RunConfig.model_fields) <= set(raw)
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#") and ":" in s and not s.endswith(":"):
            assert "#" in s, f"option without a comment: {line!r}"
