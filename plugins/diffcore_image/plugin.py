"""The image-unet plugin: registers the ``image`` domain, the ``unet`` backbone and the
``image-unet`` recipe through diffcore's hooks (entry point ``image-unet`` in the group
``diffcore``, like any third-party plugin)."""

from __future__ import annotations

from pydantic import Field, field_validator

from diffcore import BackboneSpec, Options, Recipe, UserError, hookimpl

from .domain import ImageDomain
from .unet import UNet


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


def build_unet(options: UNetOptions, domain: ImageDomain) -> UNet:
    """The U-Net for ``domain``'s image size, channels and classes."""
    res = domain.options.resolution
    levels = len(options.channel_mult)
    if res % 2 ** (levels - 1):
        raise UserError(
            f"backbone.channel_mult: {levels} levels halve the resolution {levels - 1} time(s), so data.resolution "
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
        domain.channels,
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


# What `diffcore train --plugin image-unet` runs: tuned so that the default run on the
# embedded digits trains and writes samples in under 10 minutes on a 2-core CPU with
# class consistency >= 0.9 and a Fréchet distance within 2x its real-vs-real floor
# (measured figures: docs/domains/image.md). v-prediction (Salimans & Ho 2022) rather than
# eps: with eps, the first DDIM steps from near-pure noise (alpha ~ 0.006) amplify a short
# run's eps errors into speckled samples; v stays well-conditioned there.
RECIPE_DEFAULTS = {
    "diffusion": {"schedule": "cosine", "prediction": "v", "weighting": "uniform"},
    "training": {"max_steps": 600, "batch_size": 128, "lr": 1e-3, "warmup_steps": 50, "ema_decay": 0.999, "preview_num": 100},
    "sampling": {"sampler": "ddim", "steps": 50, "guidance": 1.0, "clip_x0": 1.0, "batch_size": 250, "num": 100},
}


@hookimpl
def diffcore_register_domains(register):
    register(ImageDomain)


@hookimpl
def diffcore_register_backbones(register):
    register(
        BackboneSpec(
            name="unet",
            domain="image",
            build=build_unet,
            Options=UNetOptions,
            description="DDPM-style U-Net: GroupNorm residual blocks, time embedding, attention at low resolution, optional class labels",
        )
    )


@hookimpl
def diffcore_register_recipes(register):
    register(
        Recipe(
            name="image-unet",
            domain="image",
            backbone="unet",
            description="Class-conditional U-Net on images (default: scikit-learn's digits at 16x16, offline)",
            defaults=RECIPE_DEFAULTS,
        )
    )
