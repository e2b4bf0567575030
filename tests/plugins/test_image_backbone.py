"""The image plugin's U-Net: shapes, time and label conditioning, option checks."""

from __future__ import annotations

import pytest
import torch

from diffcore.errors import UserError
from diffcore_image.domain import ImageDomain, ImageOptions
from diffcore_image.backbone import UNet, UNetOptions, build_unet


def _randomise(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere: the zero-initialised output and residual convolutions make
    a fresh U-Net output zero, which would hide what the inputs do."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return net


@pytest.mark.parametrize(
    "channels,res,kw",
    [
        (1, 16, dict(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,))),
        (3, 16, dict(base_channels=8, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(8, 4), heads=2)),
        (1, 8, dict(base_channels=16, channel_mult=(1,), num_res_blocks=1, attention_resolutions=())),
        (3, 32, dict(base_channels=8, channel_mult=(1, 1, 2, 2), num_res_blocks=1, attention_resolutions=(8,), num_classes=5)),
    ],
)
def test_output_shape_and_dtype(channels, res, kw):
    torch.manual_seed(0)
    net = UNet(channels, resolution=res, **kw)
    x = torch.randn(3, channels, res, res)
    t = torch.tensor([0.1, 0.5, 0.9])
    cond = torch.tensor([0, 1, 2]) if kw.get("num_classes") else None
    out = net(x, t, cond)
    assert out.shape == x.shape and out.dtype == x.dtype
    # a scalar t (float64, as a sampler may pass it) is broadcast over the batch
    assert net(x, torch.tensor(0.3, dtype=torch.float64), cond).shape == x.shape


def test_output_is_zero_at_init_and_gradients_reach_every_parameter():
    net = UNet(1, base_channels=8, channel_mult=(1, 2), num_res_blocks=1, resolution=8, attention_resolutions=(4,), num_classes=3)
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(net(x, torch.rand(4)), torch.zeros_like(x))
    _randomise(net)
    net(x, torch.rand(4), torch.tensor([0, 1, 2, 0])).pow(2).sum().backward()
    # label_embed's null row gets no gradient when every label is given; all else must
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_time_embedding_changes_the_output():
    net = _randomise(UNet(1, base_channels=8, channel_mult=(1, 2), num_res_blocks=1, resolution=8, attention_resolutions=(4,))).eval()
    x = torch.randn(2, 1, 8, 8)
    a, b = net(x, torch.full((2,), 0.1)), net(x, torch.full((2,), 0.9))
    assert (a - b).abs().mean() > 1e-3 * a.abs().mean()
    assert torch.equal(a, net(x, torch.full((2,), 0.1)))  # and deterministically so


def test_label_conditions_the_output_and_none_means_the_null_label():
    net = _randomise(UNet(1, base_channels=8, channel_mult=(1, 2), num_res_blocks=1, resolution=8, num_classes=10, label_drop_prob=0.1)).eval()
    x, t = torch.randn(2, 1, 8, 8), torch.full((2,), 0.5)
    c3, c7, null = net(x, t, torch.tensor([3, 3])), net(x, t, torch.tensor([7, 7])), net(x, t, None)
    assert (c3 - c7).abs().mean() > 1e-3 * c3.abs().mean()
    assert (c3 - null).abs().mean() > 1e-3 * c3.abs().mean()
    # None is the learned null label (index num_classes), and so is -1
    assert torch.allclose(null, net(x, t, torch.tensor([-1, -1])))
    # eval mode never drops labels; an unconditional U-Net ignores cond
    assert torch.equal(c3, net(x, t, torch.tensor([3, 3])))
    unc = _randomise(UNet(1, base_channels=8, channel_mult=(1, 2), num_res_blocks=1, resolution=8)).eval()
    assert torch.equal(unc(x, t, torch.tensor([3, 3])), unc(x, t, None))


def test_label_dropout_in_training_mode():
    net = _randomise(UNet(1, base_channels=8, channel_mult=(1,), num_res_blocks=1, resolution=8, num_classes=10, label_drop_prob=0.5))
    x, t = torch.randn(1, 1, 8, 8).expand(400, -1, -1, -1), torch.full((400,), 0.5)
    net.eval()
    null = net(x[:1], t[:1], None)
    net.train()
    torch.manual_seed(0)
    out = net(x, t, torch.full((400,), 4))
    dropped = (out - null).flatten(1).abs().amax(1) < 1e-6
    # Binomial(400, 0.5): mean 200, sd 10; 5 sd either side
    assert 150 < int(dropped.sum()) < 250


def _digits_domain(**kw):
    d = ImageDomain(ImageOptions(**kw))
    return d


def test_build_unet_from_options_and_domain():
    net = build_unet(UNetOptions(base_channels=8, channel_mult=[1, 2], num_res_blocks=1), _digits_domain())
    assert net.num_classes == 10 and net.in_channels == 1
    unc = build_unet(UNetOptions(base_channels=8, channel_mult=[1, 2], num_res_blocks=1, class_conditional=False), _digits_domain())
    assert unc.label_embed is None


def test_build_unet_refuses_bad_combinations(tmp_path):
    with pytest.raises(UserError, match=r"data.resolution \(12\) must be divisible by 8"):
        build_unet(UNetOptions(channel_mult=[1, 2, 2, 2]), _digits_domain(resolution=12))
    with pytest.raises(UserError, match="backbone.heads"):
        build_unet(UNetOptions(base_channels=6, channel_mult=[1, 1], heads=4), _digits_domain())
    # a folder without class subfolders has no labels
    from PIL import Image

    for i in range(2):
        Image.new("L", (8, 8), 40 * i).save(tmp_path / f"{i}.png")
    with pytest.raises(UserError, match="backbone.class_conditional"):
        build_unet(UNetOptions(class_conditional=True), _digits_domain(path=str(tmp_path)))
    assert build_unet(UNetOptions(base_channels=8), _digits_domain(path=str(tmp_path))).label_embed is None


def test_options_refuse_unknown_keys_and_bad_values():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        UNetOptions(base_channel=32)
    with pytest.raises(ValidationError):
        UNetOptions(channel_mult=[1, 0])
    with pytest.raises(ValidationError):
        UNetOptions(label_drop_prob=1.0)
