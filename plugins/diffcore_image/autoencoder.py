"""The image domain's first-stage autoencoder for latent diffusion: diffcore's generic KL
autoencoder (:class:`diffcore.nn.KLAutoencoder`, LDM's KL-reg, Rombach et al. 2022) over
``[C, H, W]`` images in [-1, 1]. The default (f = 4, 4 latent channels) maps 3x64x64 to
4x16x16 and the embedded 16x16 digits to 4x4x4; ``diffcore train-autoencoder --plugin
image-unet`` trains it (docs/latent.md)."""

from __future__ import annotations

from pydantic import Field

from diffcore import KLAutoencoderOptions, build_kl_autoencoder


class ImageAutoencoderOptions(KLAutoencoderOptions):
    """The ``autoencoder:`` section for images (the generic options, with image defaults)."""

    channels: int = Field(16, ge=4, le=1024, description="Width of the first (full-resolution) level; level i has channels * channel_mult[i].")
    channel_mult: list[int] = Field([1, 2, 4], min_length=1, max_length=6,
                                    description="Width multiplier of each level; len - 1 downsamplings (f = 2**(len - 1)): the resolution must be divisible by f.")


def build_image_autoencoder(options: ImageAutoencoderOptions, domain):
    """The KL autoencoder for the domain's channels (1 for the digits, 3 for colour folders)."""
    return build_kl_autoencoder(options, in_channels=domain.channels, dims=2)
