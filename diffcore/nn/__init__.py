"""Network building blocks backbones share (torch only): the sinusoidal time embedding,
time-conditioned residual blocks, attention, resampling and the class-label embedding with a
null label for guidance. See :mod:`diffcore.nn.blocks`; the KL autoencoder of latent diffusion:
:mod:`diffcore.nn.autoencoder`."""

from .autoencoder import DiagonalGaussian, KLAutoencoder, latent_of
from .blocks import (
    Downsample, LabelEmbedding, ResBlock, SelfAttention, TimeEmbedding, Upsample, group_norm, timestep_embedding,
)

__all__ = [
    "DiagonalGaussian", "KLAutoencoder", "latent_of",
    "Downsample", "LabelEmbedding", "ResBlock", "SelfAttention", "TimeEmbedding", "Upsample", "group_norm",
    "timestep_embedding",
]
