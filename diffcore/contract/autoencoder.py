"""The options of the generic KL autoencoder (:class:`diffcore.nn.KLAutoencoder`), for plugins
that register it for their domain through ``diffcore_register_autoencoders``::

    def build(options: KLAutoencoderOptions, domain) -> KLAutoencoder:
        return build_kl_autoencoder(options, in_channels=domain.channels, dims=2)

    register(AutoencoderSpec("image-kl", "image", build, Options=KLAutoencoderOptions))

A plugin whose defaults differ subclasses the options and changes the fields' defaults.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from ..nn.autoencoder import KLAutoencoder
from .domain import Options


class KLAutoencoderOptions(Options):
    """The ``autoencoder:`` section of ``diffcore train-autoencoder`` for a KL autoencoder."""

    latent_channels: int = Field(4, ge=1, le=256, description="Channels of the latent z (LDM's f4 autoencoders: 3 or 4).")
    channels: int = Field(32, ge=4, le=1024, description="Width of the first level; level i has channels * channel_mult[i].")
    channel_mult: list[int] = Field([1, 2, 2], min_length=1, max_length=6,
                                    description="Width multiplier of each level; len - 1 downsamplings, each halving every spatial size (the factor f = 2**(len - 1)).")
    blocks: int = Field(1, ge=1, le=8, description="Residual blocks per level.")
    kl_weight: float = Field(1e-6, ge=0, le=1, description="Weight of the KL term towards N(0, I) (LDM's KL-reg: ~1e-6; larger gives smoother, blurrier latents).")
    spectral_weight: float = Field(0.0, ge=0, le=10, description="Weight of the L1 distance of Fourier amplitudes (sharper reconstructions); 0: off.")

    @field_validator("channel_mult")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(m < 1 for m in v):
            raise ValueError("every multiplier must be >= 1")
        return v


def build_kl_autoencoder(options: KLAutoencoderOptions, in_channels: int, dims: int = 2) -> KLAutoencoder:
    """The :class:`~diffcore.nn.KLAutoencoder` these options describe, for data of ``in_channels``
    channels over ``dims`` spatial dimensions."""
    return KLAutoencoder(in_channels, options.latent_channels, channels=options.channels, channel_mult=tuple(options.channel_mult),
                         blocks=options.blocks, dims=dims, kl_weight=options.kl_weight, spectral_weight=options.spectral_weight)
