"""A KL-regularised convolutional autoencoder: the first stage of latent diffusion (torch only).

Rombach et al. 2022 (LDM, sec. 3.1 and appendix G) compress data x into latents z = E(x) with an
encoder that outputs a diagonal Gaussian posterior q(z | x) = N(mean, exp(logvar)), decode with
D(z), and train on a reconstruction loss plus a KL term towards N(0, I) with a small weight
(their "KL-reg", weight ~1e-6), which keeps the latent space from growing arbitrary scales
without compressing it further; diffusion then runs on z, scaled to unit variance.

:class:`KLAutoencoder` works over 1-D (``dims=1``: ``[B, C, L]``, e.g. a spectrogram with its
mel bins as channels) or 2-D (``dims=2``: ``[B, C, H, W]``) data; each level halves every
spatial size. Its loss is the mean absolute error (LDM's L1) plus ``kl_weight`` times the KL
summed over the latent and divided by the data's size per example (the ratio LDM's summed
losses have), plus, optionally, ``spectral_weight`` times the L1 distance of the data's and
the reconstruction's Fourier amplitudes, a cheap stand-in for a perceptual term that
penalises the blur an L1 autoencoder leaves at high frequencies (cf. Jiang et al. 2021,
focal frequency loss).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Downsample, Upsample, group_norm


def _conv(dims: int):
    return {1: nn.Conv1d, 2: nn.Conv2d}[dims]


class DiagonalGaussian:
    """N(mean, exp(logvar)) per latent entry; ``logvar`` clamped to [-30, 20] as in LDM."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean, self.logvar = mean, logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mean + std * eps (the reparameterisation trick, Kingma & Welling 2014)."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per example, summed over the latent: 0.5 sum(mean^2 + var - 1 - logvar)."""
        k = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return k.flatten(1).sum(1)


class Block(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, plus a (1x1-projected) skip: the residual block of
    LDM's autoencoder, without a time embedding."""

    def __init__(self, in_ch: int, out_ch: int, dims: int):
        super().__init__()
        conv = _conv(dims)
        self.body = nn.Sequential(group_norm(in_ch), nn.SiLU(), conv(in_ch, out_ch, 3, padding=1),
                                  group_norm(out_ch), nn.SiLU(), conv(out_ch, out_ch, 3, padding=1))
        self.skip = conv(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class KLAutoencoder(nn.Module):
    """x ``[B, in_channels, *S]`` -> posterior over z ``[B, latent_channels, *S / 2**(levels-1)]``
    -> x_hat shaped like x.

    ``channel_mult`` gives the width of each level (``channels * m``); there are
    ``len(channel_mult) - 1`` downsamplings, so the spatial sizes must be divisible by
    :attr:`factor`. ``blocks`` residual blocks per level.
    """

    def __init__(self, in_channels: int, latent_channels: int = 4, *, channels: int = 32, channel_mult: Sequence[int] = (1, 2, 2),
                 blocks: int = 1, dims: int = 2, kl_weight: float = 1e-6, spectral_weight: float = 0.0):
        super().__init__()
        conv = _conv(dims)
        widths = [channels * m for m in channel_mult]
        self.in_channels, self.latent_channels, self.dims = in_channels, latent_channels, dims
        self.kl_weight, self.spectral_weight = kl_weight, spectral_weight
        self.factor = 2 ** (len(widths) - 1)
        enc: list[nn.Module] = [conv(in_channels, widths[0], 3, padding=1)]
        cur = widths[0]
        for i, w in enumerate(widths):
            enc += [Block(cur if b == 0 else w, w, dims) for b in range(blocks)]
            cur = w
            if i < len(widths) - 1:
                enc.append(Downsample(w, dims=dims))
        enc += [group_norm(cur), nn.SiLU(), conv(cur, 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [conv(latent_channels, cur, 3, padding=1)]
        for i in reversed(range(len(widths))):
            dec += [Block(cur if b == 0 else widths[i], widths[i], dims) for b in range(blocks)]
            cur = widths[i]
            if i > 0:
                dec.append(Upsample(cur, dims=dims))
        dec += [group_norm(cur), nn.SiLU(), conv(cur, in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of x through the posterior's mean."""
        return self.decode(self.encode(x).mode())

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """LDM's first-stage loss on one batch: L1 of a sampled reconstruction + kl_weight * KL
        (+ spectral_weight * the L1 of the Fourier amplitudes)."""
        post = self.encode(x)
        x_hat = self.decode(post.sample())
        rec = (x - x_hat).abs().mean()
        kl = post.kl().mean() / x[0].numel()
        loss = rec + self.kl_weight * kl
        logs = {"rec_l1": float(rec.detach()), "kl": float(kl.detach()), "mse": float(F.mse_loss(x_hat, x).detach())}
        if self.spectral_weight > 0:
            axes = tuple(range(2, x.ndim))
            spec = (torch.fft.rfftn(x, dim=axes).abs() - torch.fft.rfftn(x_hat, dim=axes).abs()).abs().mean()
            loss = loss + self.spectral_weight * spec / x[0, 0].numel() ** 0.5
            logs["spectral"] = float(spec.detach())
        return loss, logs


def latent_of(posterior) -> torch.Tensor:
    """The latent an encoder's output stands for: a posterior's mode (its mean), or the tensor."""
    return posterior if isinstance(posterior, torch.Tensor) else posterior.mode()  # (a tensor's own mode() is the statistic)


@torch.no_grad()
def reconstruct(net, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The round trip through an autoencoder: (z, decode(z)) with z = :func:`latent_of` encode(x)."""
    z = latent_of(net.encode(x))
    return z, net.decode(z)
