"""The toy plugin's hooks (entry point ``toy = "toyplug.plugin"`` in the fake distribution)."""

from diffcore.hookspecs import BackboneSpec, Recipe, hookimpl

from .backbone import MLPOptions, build
from .domain import ToyDomain


@hookimpl
def diffcore_register_domains(register):
    register(ToyDomain)


@hookimpl
def diffcore_register_backbones(register):
    register(BackboneSpec(name="toy-mlp", domain="toy2d", build=build, Options=MLPOptions, description="small MLP"))


@hookimpl
def diffcore_register_recipes(register):
    register(
        Recipe(
            name="toy",
            domain="toy2d",
            backbone="toy-mlp",
            description="2-D Gaussian mixture, MLP",
            defaults={
                "diffusion": {"schedule": "linear", "schedule_options": {"num_steps": 100}},
                "training": {"max_steps": 20, "batch_size": 32, "lr": 3e-3, "checkpoint_every": 0,
                             "preview_num": 8, "log_every": 1, "accelerator": "cpu"},
                "sampling": {"sampler": "ddim", "steps": 10, "batch_size": 64},  # the tests' sampler (the default is auto)
            },
        )
    )


@hookimpl
def diffcore_register_schedules(register):
    from diffcore import schedules

    register("toy-linear", lambda **kw: schedules.linear(**kw))
