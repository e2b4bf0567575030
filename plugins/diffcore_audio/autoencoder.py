"""The audio domain's first-stage autoencoder for latent diffusion: diffcore's generic KL
autoencoder (:class:`diffcore.nn.KLAutoencoder`) over spectrograms ``[n_mels, frames]`` in
[-1, 1], 1-D over time with the mel bins as channels (as the spec-unet1d backbone sees them).
The default (f = 2, 16 latent channels) maps the embedded 64x32 spectrograms to 16x16
latents, which the spec-unet1d backbone takes as 16 "mel" channels. ``diffcore
train-autoencoder --plugin audio-spectrogram`` trains it (docs/latent.md)."""

from __future__ import annotations

from pydantic import Field

from diffcore import KLAutoencoderOptions, build_kl_autoencoder


class SpectrogramAutoencoderOptions(KLAutoencoderOptions):
    """The ``autoencoder:`` section for spectrograms (the generic options, with audio defaults)."""

    latent_channels: int = Field(16, ge=1, le=256, description="Channels of the latent z (per latent frame).")
    channels: int = Field(64, ge=4, le=1024, description="Width of the first level; level i has channels * channel_mult[i].")
    channel_mult: list[int] = Field([1, 2], min_length=1, max_length=6,
                                    description="Width multiplier of each level; len - 1 downsamplings of the frames (f = 2**(len - 1)): the frame count must be divisible by f.")


def build_spectrogram_autoencoder(options: SpectrogramAutoencoderOptions, domain):
    """The KL autoencoder over the domain's mel bins (its channels)."""
    return build_kl_autoencoder(options, in_channels=domain.codec.n_mels, dims=1)
