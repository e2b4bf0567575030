"""The molecule-coords plugin's hooks: the ``molecule`` domain, the ``egnn`` backbone and the
``molecule-coords`` recipe. Found through the ``diffcore`` entry-point group like any
third-party plugin; rdkit is imported only when the domain is used."""

from __future__ import annotations

import math

from diffcore import BackboneSpec, Recipe, hookimpl

from .backbone import EGNNOptions, TorsionNetOptions, build_egnn, build_torsion_net

#: the recipe's defaults (configs/molecule-coords.yaml shows them with comments)
# prediction x0 with the EGNN's position output, weighted by SNR (so the loss equals DDPM's
# eps-MSE): the network moves atoms to where they belong instead of outputting eps, which at
# low noise would need its small corrections amplified by 1/sigma (see docs/domains/molecules.md).
CARTESIAN = {
    "diffusion": {"schedule": "linear", "prediction": "x0", "weighting": "snr"},
    "training": {"max_steps": 4000, "batch_size": 32, "lr": 1e-3, "warmup_steps": 100, "ema_decay": 0.999,
                 "checkpoint_every": 1000, "preview_num": 4, "log_every": 50},
    "sampling": {"sampler": "ddpm", "steps": 200, "batch_size": 128},
    # the small molecules it was built for: NCI-like fragments of H, C, N, O, F up to 24 atoms
    "data": {"elements": ["H", "C", "N", "O", "F"], "max_atoms": 24, "max_heavy": None, "test_set": False, "delta": 0.5},
}

#: torsional diffusion (Jing et al. 2022): the VE SDE on the torus from sigma = 0.01 pi to pi
#: (where the wrapped normal is uniform to 1.5 %), eps prediction, which on a torus the core
#: trains on the wrapped-normal target (docs/domains/molecules.md)
DEFAULTS = {
    "diffusion": {"schedule": "ve", "schedule_options": {"sigma_min": round(0.01 * math.pi, 6), "sigma_max": round(math.pi, 6)},
                  "prediction": "eps", "weighting": "uniform"},
    "training": {"max_steps": 4000, "batch_size": 16, "lr": 1e-3, "warmup_steps": 100, "ema_decay": 0.999,
                 "checkpoint_every": 1000, "preview_num": 4, "log_every": 50},
    "sampling": {"sampler": "euler-maruyama", "steps": 20, "batch_size": 128},
}


@hookimpl
def diffcore_register_domains(register):
    from .domain import MoleculeDomain
    from .torsion_domain import TorsionDomain

    register(MoleculeDomain)
    register(TorsionDomain)


@hookimpl
def diffcore_register_backbones(register):
    register(BackboneSpec(name="egnn", domain="molecule", build=build_egnn, Options=EGNNOptions,
                          description="E(n)-equivariant graph network (Satorras et al. 2021) over atoms, bonds and distances"))
    register(BackboneSpec(name="torsion-net", domain="molecule-torsion", build=build_torsion_net, Options=TorsionNetOptions,
                          description="torsional diffusion's score: torques of learned pair forces about each rotatable bond"))


@hookimpl
def diffcore_register_recipes(register):
    register(Recipe(name="molecule-coords", domain="molecule-torsion", backbone="torsion-net", defaults=DEFAULTS,
                    description="3D conformers of a given molecule: torsional diffusion on rdkit's local structures"))
    register(Recipe(name="molecule-cartesian", domain="molecule", backbone="egnn", defaults=CARTESIAN,
                    description="3D conformers of a given molecule, all coordinates diffused (EGNN, zero-CoM noise)"))
