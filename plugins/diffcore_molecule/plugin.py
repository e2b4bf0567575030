"""The molecule-coords plugin's hooks: the ``molecule`` domain, the ``egnn`` backbone and the
``molecule-coords`` recipe. Found through the ``diffcore`` entry-point group like any
third-party plugin; rdkit is imported only when the domain is used."""

from __future__ import annotations

from diffcore import BackboneSpec, Recipe, hookimpl

from .backbone import EGNNOptions, build_egnn

#: the recipe's defaults (configs/molecule-coords.yaml shows them with comments)
# prediction x0 with the EGNN's position output, weighted by SNR (so the loss equals DDPM's
# eps-MSE): the network moves atoms to where they belong instead of outputting eps, which at
# low noise would need its small corrections amplified by 1/sigma (see docs/domains/molecules.md).
DEFAULTS = {
    "diffusion": {"schedule": "linear", "prediction": "x0", "weighting": "snr"},
    "training": {"max_steps": 4000, "batch_size": 32, "lr": 1e-3, "warmup_steps": 100, "ema_decay": 0.999,
                 "checkpoint_every": 1000, "preview_num": 4, "log_every": 50},
    "sampling": {"sampler": "ddpm", "steps": 200, "batch_size": 128},
}


@hookimpl
def diffcore_register_domains(register):
    from .domain import MoleculeDomain

    register(MoleculeDomain)


@hookimpl
def diffcore_register_backbones(register):
    register(BackboneSpec(name="egnn", domain="molecule", build=build_egnn, Options=EGNNOptions,
                          description="E(n)-equivariant graph network (Satorras et al. 2021) over atoms, bonds and distances"))


@hookimpl
def diffcore_register_recipes(register):
    register(Recipe(name="molecule-coords", domain="molecule", backbone="egnn", defaults=DEFAULTS,
                    description="3D conformers of a given molecule, conditioned on its graph (EGNN, zero-CoM noise)"))
