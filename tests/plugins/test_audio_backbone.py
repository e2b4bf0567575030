"""The spec-unet1d backbone: shapes, conditioning and its build from the audio domain."""

from __future__ import annotations

import pytest

pytest.importorskip("torchaudio")

import torch  # noqa: E402

from diffcore.errors import UserError  # noqa: E402
from diffcore_audio.domain import AudioDomain, AudioOptions  # noqa: E402
from diffcore_audio.backbone import SpecUNet1d, SpecUNet1dOptions, build  # noqa: E402

SMALL = dict(channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, attention_levels=(2,))


@pytest.mark.parametrize("frames", [1, 7, 32, 33, 63])
def test_output_has_the_input_shape_for_any_clip_length(frames):
    net = SpecUNet1d(24, num_classes=3, **SMALL)
    x = torch.randn(2, 24, frames)
    for cond in (torch.tensor([0, 2]), None):
        assert net(x, torch.rand(2), cond).shape == x.shape


def test_starts_as_the_identity_and_learns_a_correction():
    torch.manual_seed(0)
    net = SpecUNet1d(16, num_classes=2, **SMALL)
    x = torch.randn(3, 16, 8)
    # zero-initialised output convolution + identity input path: eps_hat = x_t at step 0
    assert torch.equal(net(x, torch.rand(3), torch.tensor([0, 1, 0])), x)
    out = net(x, torch.rand(3))
    out.sum().backward()
    assert net.out[-1].weight.grad.abs().sum() > 0


def test_condition_and_time_change_the_output_after_training_starts():
    torch.manual_seed(0)
    net = SpecUNet1d(16, num_classes=2, label_drop=0.0, **SMALL)
    with torch.no_grad():  # leave the identity start: give every zero-initialised layer weights
        for p in net.parameters():
            if not p.any():
                p.normal_(std=0.1)
    net.eval()
    x = torch.randn(2, 16, 8)
    t = torch.tensor([0.5, 0.5])
    a, b = net(x, t, torch.tensor([0, 0])), net(x, t, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    assert not torch.allclose(net(x, t, None), a)  # None: the learned null label
    assert not torch.allclose(net(x, torch.tensor([0.1, 0.1]), torch.tensor([0, 0])), a)


def test_build_sizes_from_the_domain():
    d = AudioDomain(AudioOptions(notes=["A3"], percussion=["kick", "snare"], per_class=1, val_per_class=0, n_mels=32))
    d.setup()
    net = build(SpecUNet1dOptions(base_channels=16, channel_mult=[1, 2]), d)
    assert net.label_embed.num_classes == 3 and net.conv_in.in_channels == 32
    assert build(SpecUNet1dOptions(base_channels=16, class_conditional=False), d).label_embed is None


def test_conditioning_on_unlabelled_data_is_refused(tmp_path):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "a.wav", (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32), 16000)
    d = AudioDomain(AudioOptions(path=str(tmp_path), val_fraction=0))
    d.setup()
    with pytest.raises(UserError, match="no class labels"):
        build(SpecUNet1dOptions(class_conditional=True), d)
    assert build(SpecUNet1dOptions(base_channels=16), d).label_embed is None


def test_the_2d_refiner_starts_silent_and_learns():
    torch.manual_seed(0)
    plain = SpecUNet1d(16, num_classes=2, **SMALL)
    torch.manual_seed(0)
    refined = SpecUNet1d(16, num_classes=2, refiner_channels=8, refiner_blocks=1, **SMALL)
    x, t, c = torch.randn(3, 16, 9), torch.rand(3), torch.tensor([0, 1, 0])
    # the 1-D part is built first with the same seed, and the head's output starts at zero
    assert torch.equal(refined(x, t, c), plain(x, t, c))
    refined(x, t, c).pow(2).sum().backward()
    missing = [n for n, p in refined.named_parameters() if p.grad is None]
    assert not missing and refined.refiner["out"][-1].weight.grad.abs().sum() > 0
