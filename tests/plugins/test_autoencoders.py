"""The built-in plugins' autoencoders: the image one's shapes (16x16 digits and 64x64 colour),
the conformance kit's autoencoder check on both (and on broken ones), and latent diffusion on
the audio domain through the CLI on tiny settings."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import diffcore.testing as dt
from diffcore import AutoencoderSpec
from diffcore.contract import KLAutoencoderOptions, build_kl_autoencoder
from diffcore.platform.registry import get_registry

AUDIO = {"sample_rate": 8000, "clip_seconds": 0.25, "n_fft": 256, "hop_length": 64, "n_mels": 24, "notes": ["A3"],
         "percussion": ["kick"], "per_class": 4, "val_per_class": 1, "griffin_lim_iters": 2, "inverse_mel_iters": 2}


def _domain(name: str, **options):
    reg = get_registry()
    cls = reg.domains[name]
    domain = cls(cls.Options(**options))
    domain.setup()
    return domain


@pytest.mark.parametrize("channels, size, latent", [(1, 16, (4, 4, 4)), (3, 64, (4, 16, 16))])
def test_image_autoencoder_shapes(channels, size, latent):
    spec = get_registry().autoencoders["image-kl"]
    net = spec.build(spec.Options(), SimpleNamespace(channels=channels))
    x = torch.rand(2, channels, size, size) * 2 - 1
    post = net.encode(x)
    assert tuple(post.mode().shape[1:]) == latent and net.decode(post.sample()).shape == x.shape
    loss, logs = net.loss(x)
    assert torch.isfinite(loss) and {"rec_l1", "kl", "mse"} <= set(logs)


def test_kit_checks_the_image_autoencoder():
    report = dt.check_autoencoder(get_registry().autoencoders["image-kl"], _domain("image", resolution=8), steps=60)
    assert report.ok, str(report)
    assert any("close to x" in p for p in report.passed)


def test_kit_checks_the_audio_autoencoder():
    spec = get_registry().autoencoders["spectrogram-kl"]
    report = dt.check_autoencoder(spec, _domain("audio", **AUDIO), steps=100)
    assert report.ok, str(report)


class _Shrinking(nn.Module):
    """Decodes to the wrong shape."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def encode(self, x):
        return x[..., ::2, ::2] * self.w

    def decode(self, z):
        return z

    def loss(self, x):
        return (self.w - 1) ** 2, {}


class _Lazy(_Shrinking):
    """The right shapes, but its loss never trains the reconstruction."""

    def encode(self, x):
        return x * 0 * self.w

    def decode(self, z):
        return z


@pytest.mark.parametrize("cls, problem", [(_Shrinking, "decode(encode(x)) has shape"), (_Lazy, "the reconstruction's MSE is")])
def test_kit_refuses_broken_autoencoders(cls, problem):
    spec = AutoencoderSpec("broken", "image", lambda o, d: cls())
    report = dt.check_autoencoder(spec, _domain("image", resolution=8), steps=5, raise_on_failure=False)
    assert not report.ok and any(problem in p for p in report.problems), str(report)


def test_generic_options_build_a_1d_autoencoder():
    net = build_kl_autoencoder(KLAutoencoderOptions(latent_channels=3, channel_mult=[1, 2]), in_channels=8, dims=1)
    x = torch.randn(2, 8, 12)
    assert net.encode(x).mean.shape == (2, 3, 6) and net(x).shape == x.shape


def test_audio_latent_diffusion_through_the_cli(tmp_path):
    pytest.importorskip("torchaudio")
    from typer.testing import CliRunner

    from diffcore.cli import app

    data = [a for k, v in AUDIO.items() for a in ("--set", f"data.{k}={json.dumps(v)}")]
    ae, run, out = tmp_path / "ae", tmp_path / "run", tmp_path / "samples"
    res = CliRunner().invoke(app, ["train-autoencoder", "--plugin", "audio-spectrogram", "--out", str(ae), "--max-steps", "30",
                                   "--batch-size", "8", "--set", "training.picture_num=2", "--no-progress", *data])
    assert res.exit_code == 0, res.output
    assert list((ae / "reconstructions" / "decoded").glob("*.wav"))
    res = CliRunner().invoke(app, ["train", "--plugin", "audio-spectrogram", "--out", str(run), "--max-steps", "2", "--no-progress",
                                   "--set", f"latent.autoencoder={ae}", "--set", "training.batch_size=4", "--set", "training.preview_num=1",
                                   "--set", "sampling.steps=3", "--set", "backbone.base_channels=8", "--set", "backbone.attention_levels=[]",
                                   *data])
    assert res.exit_code == 0, res.output
    # 16 latent channels (spectrogram-kl's default), not the 24 mel bands: a backbone reading n_mels would be refused
    assert json.loads((run / "domain_state.json").read_text())["latent"]["latent_shape"] == [16, 16]
    res = CliRunner().invoke(app, ["sample", "--run", str(run), "--out", str(out), "--num", "2", "--steps", "3"])
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("*.wav"))) == 2
