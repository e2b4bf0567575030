"""The hooks of the ``points`` plugin (entry point ``points = "diffcore_points.plugin"`` in the
group ``diffcore``, declared in this package's pyproject.toml).

It uses every extension point diffcore has:

- a new domain: ``points`` (2-D point clouds);
- backbones: ``points-mlp`` for its own domain, and ``image-mlp`` for the ``image`` domain
  that another plugin (diffcore's built-in image-unet) provides -- matched by name;
- recipes (what ``diffcore train --plugin NAME`` accepts): ``points-mlp`` and ``image-mlp``;
- a sampler: ``dpm-solver++2s`` (Lu et al. 2022, DPM-Solver++(2S));
- a schedule: ``sigmoid`` (Jabri et al. 2023; Chen 2023).
"""

from __future__ import annotations

import diffcore

from .backbone import ImageMLPOptions, MLPOptions, build_image_mlp, build_points_mlp
from .domain import PointsDomain
from .sampler import sample_dpm_solver_2s
from .schedule import SigmoidSchedule

# `diffcore train --plugin points-mlp` with no other option: about a minute on one CPU core,
# and samples whose energy distance is close to the sampling-noise floor
# (README.md, "What to expect"). configs/points-mlp.yaml shows every option with a comment.
POINTS_DEFAULTS = {
    "diffusion": {"schedule": "sigmoid", "prediction": "eps", "weighting": "uniform"},
    "training": {"max_steps": 3000, "batch_size": 256, "lr": 2e-3, "warmup_steps": 100, "ema_decay": 0.995,
                 "checkpoint_every": 0, "preview_num": 2000, "log_every": 50},
    "sampling": {"sampler": "dpm-solver++2s", "steps": 10, "batch_size": 2000, "num": 2000},
}

# The built-in image domain (embedded digits, 16 x 16) with an MLP instead of the U-Net.
IMAGE_DEFAULTS = {
    "diffusion": {"schedule": "cosine", "prediction": "eps", "weighting": "uniform"},
    "training": {"max_steps": 3000, "batch_size": 128, "lr": 1e-3, "warmup_steps": 100, "ema_decay": 0.999,
                 "checkpoint_every": 1000, "preview_num": 100},
    "sampling": {"sampler": "ddim", "steps": 50, "guidance": 2.0, "clip_x0": 1.0, "batch_size": 250},
}


@diffcore.hookimpl
def diffcore_register_domains(register):
    register(PointsDomain)


@diffcore.hookimpl
def diffcore_register_backbones(register):
    register(diffcore.BackboneSpec(
        name="points-mlp", domain="points", build=build_points_mlp, Options=MLPOptions,
        description="Residual MLP with a sinusoidal time embedding (diffcore.nn.TimeEmbedding), optional class labels",
    ))
    register(diffcore.BackboneSpec(
        name="image-mlp", domain="image", build=build_image_mlp, Options=ImageMLPOptions,
        description="Residual MLP over the flattened image, for the built-in image domain (a baseline for the U-Net)",
    ))


@diffcore.hookimpl
def diffcore_register_recipes(register):
    register(diffcore.Recipe(
        name="points-mlp", domain="points", backbone="points-mlp", defaults=POINTS_DEFAULTS,
        description="2-D point clouds (two moons, swiss roll, 8 Gaussians) with an MLP; sigmoid schedule, DPM-Solver++(2S)",
    ))
    register(diffcore.Recipe(
        name="image-mlp", domain="image", backbone="image-mlp", defaults=IMAGE_DEFAULTS,
        description="The image domain (needs the image-unet plugin) with an MLP backbone",
    ))


@diffcore.hookimpl
def diffcore_register_samplers(register):
    register("dpm-solver++2s", sample_dpm_solver_2s)


@diffcore.hookimpl
def diffcore_register_schedules(register):
    register("sigmoid", SigmoidSchedule)
