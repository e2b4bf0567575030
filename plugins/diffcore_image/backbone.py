"""A DDPM-style U-Net (Ho et al. 2020, appendix B; Nichol & Dhariwal 2021) built only from
:mod:`diffcore.nn` blocks.

Layout, for ``channel_mult=(1, 2)`` and ``num_res_blocks=2`` on 16x16 input::

    conv_in 3x3 -> C
    level 0 (16x16): ResBlock C->C, ResBlock C->C, Downsample      (skips pushed after each)
    level 1 ( 8x8) : ResBlock C->2C (+attn), ResBlock 2C->2C (+attn)
    middle         : ResBlock, SelfAttention, ResBlock
    level 1 ( 8x8) : 3 x ResBlock(concat skip -> 2C) (+attn), Upsample
    level 0 (16x16): 3 x ResBlock(concat skip -> C)
    GroupNorm -> SiLU -> conv_out 3x3 (zero-initialised) -> channels of x

The diffusion time goes through the sinusoidal embedding and an MLP
(:class:`diffcore.nn.TimeEmbedding`) into every residual block. With class conditioning the
label embedding (:class:`diffcore.nn.LabelEmbedding`, whose learned null label is used when
``cond`` is ``None`` and, during training, for a ``label_drop_prob`` fraction of examples) is
added to the time embedding, so one network learns p(x | y) and p(x) as classifier-free
guidance needs (Ho & Salimans 2022).

:class:`UNetOptions` is the ``backbone:`` section of the ``unet`` backbone and
:func:`build_unet` sizes the network from the image domain (resolution, channels, classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from pydantic import Field, field_validator
from torch import nn

from diffcore import Options, UserError
from diffcore.nn import Downsample, LabelEmbedding, ResBlock, SelfAttention, TimeEmbedding, Upsample, group_norm

if TYPE_CHECKING:
    from .domain import ImageDomain


class UNetOptions(Options):
    """The ``backbone:`` section of the U-Net."""

    base_channels: int = Field(32, ge=4, description="Channels of the first level; level i has base_channels * channel_mult[i].")
    channel_mult: list[int] = Field([1, 2], min_length=1, description="Channel multiplier per resolution level; each level after the first halves the resolution.")
    num_res_blocks: int = Field(2, ge=1, description="Residual blocks per level in the encoder (the decoder has one more).")
    attention_resolutions: list[int] = Field([8], description="Feature-map sizes (in pixels) that get self-attention after each residual block (the middle always has one).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout inside the residual blocks.")
    heads: int = Field(4, ge=1, description="Attention heads (must divide the channels of every attention level).")
    class_conditional: bool | None = Field(None, description="Condition on the class label; null: when the data has class labels.")
    label_drop_prob: float = Field(0.1, ge=0, lt=1, description="Training-time probability of replacing the label by the null label, so classifier-free guidance works.")

    @field_validator("channel_mult")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(m < 1 for m in v):
            raise ValueError("every multiplier must be >= 1")
        return v


class UNet(nn.Module):
    """``forward(x_t, t, cond=None)``: ``x_t`` ``[B, C, H, W]``, ``t`` ``[B]`` in [0, 1],
    ``cond`` a ``LongTensor [B]`` of class ids (-1 = no label) or ``None``; returns a tensor
    shaped like ``x_t``. H and W must be divisible by ``2 ** (len(channel_mult) - 1)``."""

    def __init__(
        self,
        in_channels: int = 1,
        *,
        base_channels: int = 32,
        channel_mult: Sequence[int] = (1, 2),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (8,),
        resolution: int = 16,
        dropout: float = 0.0,
        heads: int = 4,
        num_classes: int | None = None,
        label_drop_prob: float = 0.1,
    ):
        super().__init__()
        if not channel_mult:
            raise ValueError("channel_mult must name at least one level")
        self.in_channels, self.resolution = in_channels, resolution
        self.num_classes = num_classes
        emb_dim = 4 * base_channels
        self.time_embed = TimeEmbedding(base_channels, emb_dim)
        self.label_embed = LabelEmbedding(num_classes, emb_dim, label_drop_prob) if num_classes else None

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, emb_dim, dims=2, dropout=dropout)

        def attn(ch: int, size: int) -> nn.Module:
            return SelfAttention(ch, heads, dims=2) if size in attention_resolutions else nn.Identity()

        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        # encoder: remember the channel count of every feature map pushed as a skip
        self.down = nn.ModuleList()
        skips = [base_channels]
        ch, size = base_channels, resolution
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                out = base_channels * mult
                self.down.append(nn.ModuleList([res(ch, out), attn(out, size)]))
                ch = out
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.down.append(Downsample(ch, dims=2))
                skips.append(ch)
                size //= 2

        self.mid = nn.ModuleList([res(ch, ch), SelfAttention(ch, heads, dims=2), res(ch, ch)])

        # decoder: one more block per level than the encoder, each eating one skip
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_res_blocks + 1):
                out = base_channels * mult
                self.up.append(nn.ModuleList([res(ch + skips.pop(), out), attn(out, size)]))
                ch = out
            if level > 0:
                self.up.append(Upsample(ch, dims=2))
                size *= 2
        assert not skips

        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv2d(ch, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)  # predict zero at init: a stable start
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0]
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32).reshape(-1)
        emb = self.time_embed(t.expand(b) if t.numel() == 1 else t)
        if self.label_embed is not None:
            emb = emb + self.label_embed(cond, b, device=x.device)
        h = self.conv_in(x)
        hs = [h]
        for block in self.down:
            if isinstance(block, Downsample):
                h = block(h)
            else:
                h = block[1](block[0](h, emb))
            hs.append(h)
        h = self.mid[0](h, emb)
        h = self.mid[1](h)
        h = self.mid[2](h, emb)
        for block in self.up:
            if isinstance(block, Upsample):
                h = block(h)
            else:
                h = block[1](block[0](torch.cat([h, hs.pop()], dim=1), emb))
        return self.out(h).to(x.dtype)


def build_unet(options: UNetOptions, domain: ImageDomain) -> UNet:
    """The U-Net for ``domain``'s image size, channels and classes (a latent run's: its latents')."""
    latent = getattr(domain, "latent_shape", None)  # latent diffusion: (channels, height, width) of the latents
    channels, res = (latent[0], latent[-1]) if latent else (domain.channels, domain.options.resolution)
    levels = len(options.channel_mult)
    if res % 2 ** (levels - 1):
        what = "the latent resolution" if latent else "data.resolution"
        raise UserError(
            f"backbone.channel_mult: {levels} levels halve the resolution {levels - 1} time(s), so {what} "
            f"({res}) must be divisible by {2 ** (levels - 1)}; change one of them"
        )
    sizes = [res // 2**i for i in range(levels)]
    for i, m in enumerate(options.channel_mult):
        ch = options.base_channels * m
        if (sizes[i] in options.attention_resolutions or i == levels - 1) and ch % options.heads:
            raise UserError(f"backbone.heads: {options.heads} heads do not divide the {ch} channels at {sizes[i]}x{sizes[i]}; pick a divisor")
    labels = domain.labels
    conditional = options.class_conditional
    if conditional and not labels:
        raise UserError(
            "backbone.class_conditional: the data has no class labels (put images in one subfolder per class); "
            "set it to false or null"
        )
    if conditional is None:
        conditional = bool(labels)
    return UNet(
        channels,
        base_channels=options.base_channels,
        channel_mult=tuple(options.channel_mult),
        num_res_blocks=options.num_res_blocks,
        attention_resolutions=tuple(options.attention_resolutions),
        resolution=res,
        dropout=options.dropout,
        heads=options.heads,
        num_classes=len(labels) if conditional else None,
        label_drop_prob=options.label_drop_prob,
    )
