"""``spec-unet1d``: a 1-D U-Net over time whose channels are the mel bins.

A log-mel spectrogram ``[n_mels, frames]`` is read as a sequence of ``frames`` spectra, each
a vector of ``n_mels`` numbers (as in Grad-TTS's decoder input and WaveGrad's conditioning).
Why 1-D rather than a 2-D U-Net over (mel, time):

- a pitched note is a *pattern across mel bins* (the harmonic comb of its pitch, its timbre's
  spectral envelope) that changes slowly over time (the amplitude envelope). A 2-D
  convolution assumes that a pattern shifted along the mel axis means the same thing, but
  a shift in mel is a change of pitch *and* of harmonic spacing (mel is not log-frequency);
  the 1-D network sees the whole spectrum of a frame in its first layer, so the class
  embedding can place the harmonics directly, and its receptive field along time grows
  with depth as a U-Net's does;
- it is about an order of magnitude cheaper on a CPU for the same width (convolutions over
  ``frames`` positions instead of ``n_mels x frames``), which is what lets the default run
  train in minutes.

Blocks come from :mod:`diffcore.nn` with ``dims=1``: residual blocks modulated by the
sinusoidal time embedding (plus an optional class embedding with a learned null label,
dropped with probability ``label_drop`` in training, for classifier-free guidance),
self-attention at the coarse resolutions, stride-2 down- and nearest up-sampling, skip
connections. The time axis is padded (replicate) to a multiple of 2^(levels - 1) and cropped
back, so any clip length works.

One addition to the DDPM U-Net: a per-frame linear map from the input spectrogram to the
output, initialised to the identity, with a gain per mel bin set by the time (and class)
embedding. With 64 mel channels in and a first level only 64 wide, the U-Net alone must carry
every input channel through to its output, which the target needs wherever it depends on x_t
linearly (eps ~ x_t at high noise; v = (alpha x_t - x0) / sigma). Measured after 300 steps on
the default data, the held-out eps error at t = 0.9 is 0.29 without this path and 0.03 with it
(the trivial predictor x_t scores 0.005); docs/domains/audio.md has the other measurements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from diffcore import Options, UserError
from diffcore.nn import Downsample, LabelEmbedding, ResBlock, SelfAttention, TimeEmbedding, Upsample, group_norm


class SpecUNet1dOptions(Options):
    """The ``backbone:`` section of ``spec-unet1d``."""

    base_channels: int = Field(64, ge=8, description="Channels of the first level (the 1-D feature maps over time); level i has base_channels * channel_mult[i].")
    channel_mult: list[int] = Field([1, 2, 2], min_length=1, description="Width multiplier per level; each level after the first halves the time resolution.")
    num_res_blocks: int = Field(2, ge=1, description="Residual blocks per level.")
    attention_levels: list[int] = Field([2], description="Levels (0-based) with self-attention over time after each residual block.")
    heads: int = Field(4, ge=1, description="Attention heads.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout inside the residual blocks.")
    class_conditional: bool | None = Field(None, description="Condition on the class label; null: when the data has labels (the embedded notes: yes).")
    label_drop_prob: float = Field(0.1, ge=0, lt=1, description="Probability of the null label in training, for classifier-free guidance.")
    input_skip: bool = Field(True, description="Add a time-gated per-frame linear path from the input spectrogram to the output (starts as the identity).")
    refiner_channels: int = Field(16, ge=0, description="Channels of a small 2-D residual head over (mel, time) after the 1-D U-Net (0: none); it sees each bin's neighbours, which the 1-D network mixes into its channels.")
    refiner_blocks: int = Field(2, ge=1, description="Residual blocks of the 2-D head (with refiner_channels > 0).")


class SpecUNet1d(nn.Module):
    """``forward(x [B, n_mels, frames], t [B], cond LongTensor [B] | None) -> [B, n_mels, frames]``."""

    def __init__(self, n_mels: int, *, num_classes: int | None = None, channels: int = 64,
                 channel_mult: tuple[int, ...] = (1, 2, 2), num_res_blocks: int = 2,
                 attention_levels: tuple[int, ...] = (2,), heads: int = 4, dropout: float = 0.0,
                 label_drop: float = 0.1, input_skip: bool = True, refiner_channels: int = 0, refiner_blocks: int = 2):
        super().__init__()
        emb = 4 * channels
        self.levels = len(channel_mult)
        self.time_embed = TimeEmbedding(channels, emb)
        self.label_embed = LabelEmbedding(num_classes, emb, label_drop) if num_classes else None
        self.conv_in = nn.Conv1d(n_mels, channels, 3, padding=1)

        self.down = nn.ModuleList()
        skips, ch = [channels], channels
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                out = channels * mult
                block = nn.ModuleList([ResBlock(ch, out, emb, dims=1, dropout=dropout)])
                if level in attention_levels:
                    block.append(SelfAttention(out, heads, dims=1))
                self.down.append(block)
                ch = out
                skips.append(ch)
            if level < self.levels - 1:
                self.down.append(nn.ModuleList([Downsample(ch, dims=1)]))
                skips.append(ch)

        self.mid = nn.ModuleList([ResBlock(ch, ch, emb, dims=1, dropout=dropout), SelfAttention(ch, heads, dims=1),
                                  ResBlock(ch, ch, emb, dims=1, dropout=dropout)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                out = channels * mult
                block = nn.ModuleList([ResBlock(ch + skips.pop(), out, emb, dims=1, dropout=dropout)])
                if level in attention_levels:
                    block.append(SelfAttention(out, heads, dims=1))
                ch = out
                if level > 0 and i == num_res_blocks:
                    block.append(Upsample(ch, dims=1))
                self.up.append(block)

        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv1d(ch, n_mels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        # A per-frame linear map from the input to the output, beside the U-Net, whose gain per
        # mel bin is set by the time (and class) embedding; see the module docstring.
        self.input_skip = nn.Conv1d(n_mels, n_mels, 1) if input_skip else None
        self.skip_gain = nn.Linear(emb, n_mels) if input_skip else None
        if self.input_skip is not None:
            with torch.no_grad():  # start as the identity: eps_hat = x_t
                self.input_skip.weight.copy_(torch.eye(n_mels)[:, :, None])
                self.input_skip.bias.zero_()
            nn.init.zeros_(self.skip_gain.weight)
            nn.init.zeros_(self.skip_gain.bias)

        # An optional 2-D head over (mel, time): input [U-Net output, x_t] as two channels,
        # residual blocks conditioned on the embedding, a zero-initialised output (starts as
        # the 1-D network alone).
        self.refiner = None
        if refiner_channels:
            rc = refiner_channels
            self.refiner = nn.ModuleDict({
                "inp": nn.Conv2d(2, rc, 3, padding=1),
                "blocks": nn.ModuleList(ResBlock(rc, rc, emb, dims=2, dropout=dropout) for _ in range(refiner_blocks)),
                "out": nn.Sequential(group_norm(rc), nn.SiLU(), nn.Conv2d(rc, 1, 3, padding=1)),
            })
            nn.init.zeros_(self.refiner["out"][-1].weight)
            nn.init.zeros_(self.refiner["out"][-1].bias)

    @staticmethod
    def _run(block: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in block:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        frames = x.shape[-1]
        mult = 2 ** (self.levels - 1)
        pad = (-frames) % mult
        if pad:
            x = F.pad(x, (0, pad), mode="replicate")
        t = t.to(x.dtype).expand(x.shape[0]) if t.ndim == 0 else t
        emb = self.time_embed(t)
        if self.label_embed is not None:
            emb = emb + self.label_embed(cond, x.shape[0], device=x.device)
        h = self.conv_in(x)
        hs = [h]
        for block in self.down:
            h = self._run(block, h, emb)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        for block in self.up:
            h = torch.cat([h, hs.pop()], dim=1)
            h = self._run(block, h, emb)
        out = self.out(h)
        if self.input_skip is not None:
            out = out + (1.0 + self.skip_gain(emb))[..., None] * self.input_skip(x)
        if self.refiner is not None:
            h = self.refiner["inp"](torch.stack([out, x], dim=1))
            for block in self.refiner["blocks"]:
                h = block(h, emb)
            out = out + self.refiner["out"](h)[:, 0]
        return out[..., :frames]


def build(options: SpecUNet1dOptions, domain) -> SpecUNet1d:
    """The BackboneSpec builder: sizes the network from the (set-up) audio domain."""
    labels = domain.labels
    if options.class_conditional and not labels:
        raise UserError("backbone.class_conditional is true but the data has no class labels; put the audio files in one subfolder per class, or set it to null")
    conditional = bool(labels) if options.class_conditional is None else options.class_conditional
    num_classes = len(labels) if conditional else None
    latent = getattr(domain, "latent_shape", None)  # latent diffusion: (channels, frames) of the latents
    return SpecUNet1d(
        latent[0] if latent else domain.codec.n_mels, num_classes=num_classes, channels=options.base_channels,
        channel_mult=tuple(options.channel_mult), num_res_blocks=options.num_res_blocks,
        attention_levels=tuple(options.attention_levels), heads=options.heads, dropout=options.dropout,
        label_drop=options.label_drop_prob, input_skip=options.input_skip,
        refiner_channels=options.refiner_channels, refiner_blocks=options.refiner_blocks,
    )
