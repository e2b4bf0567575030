"""The image-unet plugin: registers the ``image`` domain, the ``unet`` backbone and the
``image-unet`` recipe through diffcore's hooks (entry point ``image-unet`` in the group
``diffcore``, like any third-party plugin)."""

from __future__ import annotations

from diffcore import AutoencoderSpec, BackboneSpec, Recipe, hookimpl

from .autoencoder import ImageAutoencoderOptions, build_image_autoencoder
from .backbone import UNetOptions, build_unet
from .domain import ImageDomain

# What `diffcore train --plugin image-unet` runs: tuned so that the default run on the
# embedded digits trains and writes samples in under 10 minutes on a 2-core CPU with
# class consistency >= 0.9 and a Fréchet distance within 2x its real-vs-real floor
# (measured figures: docs/domains/image.md). v-prediction (Salimans & Ho 2022) rather than
# eps: with eps, the first DDIM steps from near-pure noise (alpha ~ 0.006) amplify a short
# run's eps errors into speckled samples; v stays well-conditioned there.
RECIPE_DEFAULTS = {
    "diffusion": {"schedule": "cosine", "prediction": "v", "weighting": "uniform"},
    "training": {"max_steps": 600, "batch_size": 128, "lr": 1e-3, "warmup_steps": 50, "ema_decay": 0.999, "preview_num": 100},
    "sampling": {"sampler": "auto", "steps": 50, "guidance": 1.0, "clip_x0": 1.0, "batch_size": 250, "num": 100},
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


@hookimpl
def diffcore_register_autoencoders(register):
    register(AutoencoderSpec(
        name="image-kl", domain="image", build=build_image_autoencoder, Options=ImageAutoencoderOptions,
        description="KL-regularised conv autoencoder (LDM KL-reg, f = 4, 4 latent channels) for latent diffusion on images",
    ))
