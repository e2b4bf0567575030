"""Network building blocks backbones share (torch only): the sinusoidal time embedding,
time-conditioned residual blocks, attention, resampling and the class-label embedding with a
null label for guidance. See :mod:`diffcore.nn.blocks`."""

from .blocks import (
    Downsample, LabelEmbedding, ResBlock, SelfAttention, TimeEmbedding, Upsample, group_norm, timestep_embedding,
)

__all__ = [
    "Downsample", "LabelEmbedding", "ResBlock", "SelfAttention", "TimeEmbedding", "Upsample", "group_norm",
    "timestep_embedding",
]
