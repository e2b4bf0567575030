"""MLP denoisers built from diffcore.nn: one for the ``points`` domain, and one for the
built-in ``image`` domain of another plugin -- matched by the domain's name and read through
the Domain interface only (``sample_batches`` gives the tensor shape, ``labels`` the classes),
so this package never imports that plugin.

The network (both backbones): x flattened to a vector -> Linear -> ``depth`` residual blocks
``h + W2 SiLU(W1 LayerNorm(h) + E emb)`` -> LayerNorm -> SiLU -> Linear, where ``emb`` is the
sinusoidal time embedding through an MLP (:class:`diffcore.nn.TimeEmbedding`, DDPM's) plus,
for class-conditional models, a label embedding with a null label
(:class:`diffcore.nn.LabelEmbedding`, dropped at ``label_drop_prob`` so that classifier-free
guidance works).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

import diffcore
from diffcore.errors import UserError
from diffcore.nn import LabelEmbedding, TimeEmbedding


class MLPOptions(diffcore.Options):
    """The ``backbone:`` section of the MLP backbones."""

    width: int = Field(128, ge=8, description="Width of the hidden layers.")
    depth: int = Field(3, ge=1, le=64, description="Number of residual blocks.")
    time_dim: int = Field(64, ge=2, description="Size of the sinusoidal time features (the time MLP maps them to `width`).")
    class_conditional: bool | None = Field(None, description="Condition on the class label; null: when the data has class labels.")
    label_drop_prob: float = Field(0.1, ge=0, lt=1, description="Training-time probability of dropping the label (classifier-free guidance).")


class ImageMLPOptions(MLPOptions):
    """The ``backbone:`` section of ``image-mlp`` (wider and deeper defaults: an image is a
    vector of C x H x W pixels)."""

    width: int = Field(512, ge=8, description="Width of the hidden layers.")
    depth: int = Field(4, ge=1, le=64, description="Number of residual blocks.")
    time_dim: int = Field(128, ge=2, description="Size of the sinusoidal time features (the time MLP maps them to `width`).")


class Block(nn.Module):
    """Pre-norm residual MLP block, the embedding added between its two layers."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.emb = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(F.silu(self.fc1(self.norm(h)) + self.emb(emb)))


class MLPDenoiser(nn.Module):
    """``forward(x_t [B, *shape], t [B], cond=None) -> [B, *shape]`` for any fixed ``shape``."""

    def __init__(self, shape: tuple[int, ...], options: MLPOptions, num_classes: int | None = None):
        super().__init__()
        self.shape = tuple(shape)
        dim = math.prod(self.shape)
        w = options.width
        self.inp = nn.Linear(dim, w)
        self.time = TimeEmbedding(options.time_dim, w)
        self.label = LabelEmbedding(num_classes, w, options.label_drop_prob) if num_classes else None
        self.blocks = nn.ModuleList(Block(w) for _ in range(options.depth))
        self.out = nn.Sequential(nn.LayerNorm(w), nn.SiLU(), nn.Linear(w, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0]
        emb = self.time(t)
        if self.label is not None:
            # cond None (unconditional, as classifier-free guidance asks for) -> the null label
            emb = emb + self.label(cond, b, x.device)
        emb = F.silu(emb)
        h = self.inp(x.reshape(b, -1))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h).reshape(x.shape).to(x.dtype)


def _conditional(options: MLPOptions, labels: list[str] | None, domain: str) -> int | None:
    if options.class_conditional and not labels:
        raise UserError(f"backbone.class_conditional: the {domain} data has no class labels; set it to false or null")
    use = bool(labels) if options.class_conditional is None else options.class_conditional
    return len(labels) if use else None


def data_shape(domain: diffcore.Domain) -> tuple[int, ...]:
    """The shape of one example, read through the Domain interface: the first sampling
    batch's ``shape`` without the batch dimension (works after ``setup()`` or after
    ``load_state_dict()``, as ``diffcore sample`` rebuilds a run)."""
    batch = next(iter(domain.sample_batches(1, 1)))
    return tuple(int(s) for s in batch["shape"][1:])


def build_points_mlp(options: MLPOptions, domain: diffcore.Domain) -> MLPDenoiser:
    return MLPDenoiser((2,), options, _conditional(options, domain.labels, "points"))


def build_image_mlp(options: ImageMLPOptions, domain: diffcore.Domain) -> MLPDenoiser:
    """An MLP over the flattened image; the image domain's shape ``[C, H, W]`` and its
    classes are read from the domain (another plugin's), not imported."""
    shape = data_shape(domain)
    if len(shape) != 3:
        raise UserError(f"backbone image-mlp: expected images [C, H, W], the domain gives examples of shape {list(shape)}")
    return MLPDenoiser(shape, options, _conditional(options, domain.labels, "image"))
