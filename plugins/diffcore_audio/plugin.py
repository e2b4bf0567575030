"""Hook implementations of the ``audio-spectrogram`` plugin (entry point in pyproject.toml)."""

from __future__ import annotations

from diffcore import AutoencoderSpec, BackboneSpec, Recipe, hookimpl

from .autoencoder import SpectrogramAutoencoderOptions, build_spectrogram_autoencoder
from .backbone import SpecUNet1dOptions, build
from .domain import AudioDomain

RECIPE_DEFAULTS = {
    "diffusion": {"schedule": "cosine", "prediction": "v", "weighting": "uniform"},
    "training": {"max_steps": 3000, "batch_size": 32, "lr": 1e-3, "warmup_steps": 100, "lr_schedule": "cosine", "ema_decay": 0.999,
                 "checkpoint_every": 1000, "preview_num": 16, "log_every": 50},
    "sampling": {"sampler": "auto", "steps": 50, "guidance": 1.0, "clip_x0": 1.0, "batch_size": 64},
}


@hookimpl
def diffcore_register_domains(register):
    register(AudioDomain)


@hookimpl
def diffcore_register_backbones(register):
    register(BackboneSpec(
        name="spec-unet1d", domain="audio", build=build, Options=SpecUNet1dOptions,
        description="1-D U-Net over time with the mel bins as channels, plus a small 2-D head over (mel, time) (diffcore.nn blocks); optional class conditioning.",
    ))


@hookimpl
def diffcore_register_recipes(register):
    register(Recipe(
        name="audio-spectrogram", domain="audio", backbone="spec-unet1d",
        description="Log-mel spectrogram diffusion of short clips; embedded synthesized instrument notes, or data.path=DIR.",
        defaults=RECIPE_DEFAULTS,
    ))


@hookimpl
def diffcore_register_autoencoders(register):
    register(AutoencoderSpec(
        name="spectrogram-kl", domain="audio", build=build_spectrogram_autoencoder, Options=SpectrogramAutoencoderOptions,
        description="KL-regularised 1-D conv autoencoder over spectrogram frames (f = 2, 16 latent channels) for latent diffusion on audio",
    ))
