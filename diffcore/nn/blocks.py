"""Network building blocks shared by backbones (the image U-Net, the audio denoiser, third
party networks). Plugins share code through these, never by importing each other.

- :func:`timestep_embedding` / :class:`TimeEmbedding`: the sinusoidal embedding of the
  diffusion time (Vaswani et al. 2017, sec. 3.5; used by DDPM, Ho et al. 2020, appendix B)
  followed by an MLP.
- :class:`ResBlock`: a residual block with GroupNorm whose features are modulated by the time
  (and label) embedding (DDPM's Wide-ResNet block; scale-shift as in Dhariwal & Nichol 2021).
- :class:`SelfAttention`: multi-head self-attention over all positions, for low resolutions.
- :class:`Downsample` / :class:`Upsample`.
- :class:`LabelEmbedding`: class-label embedding with a learned null label, dropped at a
  configured rate during training so one network learns both p(x | y) and p(x), as
  classifier-free guidance needs (Ho & Salimans 2022).

Every block works over 1-D (``dims=1``: ``[B, C, L]``) or 2-D (``dims=2``: ``[B, C, H, W]``)
feature maps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, *, scale: float = 1000.0, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of t (shape ``[B]``, in [0, 1]) into ``[B, dim]``.

    ``scale`` maps t in [0, 1] onto DDPM's step range [0, 1000] so the frequencies cover it as
    in the paper: emb = [cos(scale t w_k), sin(scale t w_k)], w_k = max_period^(-k / (dim/2)).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (scale * t.float())[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimeEmbedding(nn.Module):
    """t -> sinusoidal features -> Linear -> SiLU -> Linear (DDPM's time MLP)."""

    def __init__(self, dim: int, out_dim: int | None = None, *, scale: float = 1000.0):
        super().__init__()
        out_dim = out_dim or 4 * dim
        self.dim, self.scale = dim, scale
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.dim, scale=self.scale))


class LabelEmbedding(nn.Module):
    """Class labels -> vectors, with index ``num_classes`` as the learned null label.

    ``forward(labels, batch_size)``: ``labels`` is a ``LongTensor [B]`` or ``None`` (all
    null: the unconditional model). In training mode each label is replaced by the null label
    with probability ``drop_prob`` (classifier-free guidance's condition dropout). Labels equal
    to -1 are treated as null too.
    """

    def __init__(self, num_classes: int, dim: int, drop_prob: float = 0.1):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError("drop_prob must be in [0, 1)")
        self.num_classes, self.drop_prob = num_classes, drop_prob
        self.embed = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels: torch.Tensor | None, batch_size: int, device=None) -> torch.Tensor:
        null = torch.full((batch_size,), self.num_classes, dtype=torch.long, device=device or self.embed.weight.device)
        if labels is None:
            return self.embed(null)
        labels = labels.long().to(null.device)
        labels = torch.where(labels < 0, null, labels)
        if self.training and self.drop_prob > 0:
            drop = torch.rand(batch_size, device=null.device) < self.drop_prob
            labels = torch.where(drop, null, labels)
        return self.embed(labels)


def _conv(dims: int):
    return {1: nn.Conv1d, 2: nn.Conv2d}[dims]


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``groups`` that divides ``channels``."""
    g = math.gcd(channels, groups)
    return nn.GroupNorm(g, channels)


class ResBlock(nn.Module):
    """x -> GN -> SiLU -> conv -> (scale, shift from the embedding) -> GN -> SiLU -> dropout
    -> conv, plus a (1x1-projected) skip. The embedding enters every block."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, dims: int = 2, dropout: float = 0.0, groups: int = 32):
        super().__init__()
        conv = _conv(dims)
        self.norm1 = group_norm(in_ch, groups)
        self.conv1 = conv(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_ch))
        self.norm2 = group_norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # start as the identity: stable early training
        nn.init.zeros_(self.conv2.bias)
        self.skip = conv(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb).chunk(2, dim=1)
        extra = (None,) * (h.ndim - 2)
        h = self.norm2(h) * (1 + scale[(...,) + extra]) + shift[(...,) + extra]
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over all positions of a feature map, with a residual."""

    def __init__(self, channels: int, heads: int = 4, *, dims: int = 2, groups: int = 32):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        conv = _conv(dims)
        self.heads = heads
        self.norm = group_norm(channels, groups)
        self.qkv = conv(channels, 3 * channels, 1)
        self.proj = conv(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        spatial = x.shape[2:]
        qkv = self.qkv(self.norm(x)).reshape(b, 3 * self.heads, c // self.heads, -1)
        # [B, heads, N, d] with d contiguous (one copy): on CPU a transposed view (stride N
        # along d) sends SDPA to its slow math kernel instead of the fused flash kernel.
        q, k, v = qkv.transpose(-1, -2).contiguous().chunk(3, dim=1)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, *spatial)
        return x + self.proj(out)


class Downsample(nn.Module):
    """Strided 3x3 convolution halving each spatial size."""

    def __init__(self, channels: int, *, dims: int = 2):
        super().__init__()
        self.conv = _conv(dims)(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling by 2 followed by a 3x3 convolution."""

    def __init__(self, channels: int, *, dims: int = 2):
        super().__init__()
        self.conv = _conv(dims)(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
