"""Autoencoder runs: their config, their directory, and loading one safely.

``diffcore train-autoencoder --plugin RECIPE --out AE_RUN`` (:mod:`.autoencoder_training`)
trains the autoencoder a plugin registered for the recipe's domain (``--autoencoder NAME``
when it registered several) into a run directory of its own::

    config.yaml              kind: autoencoder, the recipe, the autoencoder's name, data:,
                             autoencoder: (its options) and training:, every key resolved
    domain_state.json        the domain's state (what building the autoencoder may read)
    autoencoder.safetensors  the weights (loaded without unpickling anything)
    autoencoder.json         what a diffusion run checks: domain, data and latent shapes
    metrics.json             reconstruction MSE, PSNR, L1 on held-out data
    metrics.csv              the training loss every training.log_every steps
    reconstructions/         original/ and decoded/: held-out examples and their
                             reconstructions, written by the domain's own writer

Config layers, lowest first: the defaults below and the autoencoder's ``Options``, the
recipe's ``data:`` defaults (so the data match a diffusion run of the recipe), ``--config
FILE``, ``--set KEY=VALUE``, the command's flags. A diffusion run names the directory in
``latent.autoencoder`` (:mod:`.latent`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError
from torch import nn

from diffcore.contract.domain import Domain
from diffcore.contract.errors import UserError
from diffcore.contract.hooks import AutoencoderSpec, Recipe
from diffcore.platform.config import Section, validate_section
from diffcore.platform.layers import merge, sets_to_dict
from diffcore.platform.messages import format_errors
from diffcore.platform.validation import SEED_MAX, require_finite
from diffcore.platform.yamlfile import load_yaml

KIND = "autoencoder"
WEIGHTS = "autoencoder.safetensors"
META = "autoencoder.json"
RECONSTRUCTIONS = "reconstructions"


class AETrainingConfig(Section):
    """How an autoencoder is trained."""

    max_steps: int = Field(2000, ge=1, description="Optimiser steps.")
    batch_size: int = Field(64, ge=1, description="Examples per step.")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate (constant after a 50-step warm-up).")
    grad_clip: float | None = Field(1.0, gt=0, description="Clip the gradient norm to this value; null: no clipping.")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Random seed (the same seed and config give the same weights on a CPU).")
    threads: int | None = Field(None, ge=1, le=1024, description="torch's intra-op CPU threads; null: OMP_NUM_THREADS if set, else half the cores.")
    accelerator: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Where to train: auto (a GPU if there is one), cpu, cuda, mps.")
    log_every: int = Field(100, ge=1, description="Log the loss to metrics.csv (and the progress line) every N steps.")
    eval_num: int = Field(256, ge=1, description="Held-out examples the reconstruction metrics are computed on (the training set's first ones where the domain holds none out).")
    picture_num: int = Field(16, ge=0, description="Held-out examples written with their reconstructions under reconstructions/ (0: none).")


class AutoencoderRunConfig(Section):
    """A whole autoencoder run."""

    kind: Literal["autoencoder"] = Field(KIND, description="Marks an autoencoder run (not a diffusion run).")
    plugin: str = Field(description="The recipe whose domain (and data defaults) the autoencoder is trained on.")
    name: str | None = Field(None, description="The autoencoder (`diffcore plugins` lists them); null: the one registered for the recipe's domain.")
    data: dict[str, Any] = Field(default_factory=dict, description="The domain's options, as in a diffusion run.")
    autoencoder: dict[str, Any] = Field(default_factory=dict, description="The autoencoder's options, validated by its own model.")
    training: AETrainingConfig = Field(default_factory=AETrainingConfig, description="Optimisation and what the run writes.")


@dataclass
class AEResolved:
    config: AutoencoderRunConfig
    recipe: Recipe
    domain_cls: type[Domain]
    spec: AutoencoderSpec
    data_options: BaseModel
    options: BaseModel


def pick(registry, domain: str, name: str | None) -> AutoencoderSpec:
    """The autoencoder ``name``, or the only one registered for ``domain``."""
    if name is not None:
        return registry.autoencoder(name, domain=domain)
    fits = sorted(n for n, a in registry.autoencoders.items() if a.domain == domain)
    if len(fits) != 1:
        raise UserError(f"the {domain!r} domain has {'no autoencoder' if not fits else 'several autoencoders: ' + ', '.join(fits)}"
                        + ("; a plugin registers one with the diffcore_register_autoencoders hook" if not fits else "; choose one with --autoencoder NAME"))
    return registry.autoencoders[fits[0]]


def resolve(plugin: str | None = None, config_file: str | Path | None = None, sets=(), flags: dict | None = None, *,
            base: dict[str, Any] | None = None, registry=None) -> AEResolved:
    """Resolve and validate an autoencoder run's config (see the module docstring)."""
    from diffcore.platform.registry import get_registry

    registry = registry if registry is not None else get_registry()
    merged: dict[str, Any] = copy.deepcopy(base) if base is not None else {}
    for layer in (load_yaml(config_file) if config_file is not None else None, sets_to_dict(sets) if sets else None, flags):
        merged = merge(merged, layer) if layer else merged
    if plugin is not None:
        if merged.get("plugin") not in (None, plugin):
            raise UserError(f"--plugin {plugin!r} does not match plugin: {merged['plugin']!r} in the config; drop one of them")
        merged["plugin"] = plugin
    if not isinstance(merged.get("plugin"), str):
        raise UserError("no plugin given: pass --plugin RECIPE (the recipe whose domain the autoencoder is for); `diffcore plugins` lists them")
    try:
        recipe = registry.recipe(merged["plugin"])
    except UserError as e:
        raise UserError(f"plugin: {e}") from None
    if base is None:
        merged = merge({"data": copy.deepcopy(recipe.defaults.get("data", {}))}, merged)
    try:
        cfg = AutoencoderRunConfig.model_validate(merged)
    except ValidationError as e:
        raise UserError(format_errors(e, AutoencoderRunConfig)) from None
    require_finite(cfg.model_dump(exclude={"data", "autoencoder"}), "")
    domain_cls = registry.domain(recipe.domain)
    try:
        spec = pick(registry, recipe.domain, cfg.name)
    except UserError as e:
        raise UserError(f"{'--autoencoder' if cfg.name else 'plugin'}: {e}") from None
    data_options = validate_section(domain_cls.Options, cfg.data, "data")
    options = validate_section(spec.Options, cfg.autoencoder, "autoencoder")
    cfg = cfg.model_copy(update={"name": spec.name, "data": data_options.model_dump(mode="json"), "autoencoder": options.model_dump(mode="json")})
    return AEResolved(cfg, recipe, domain_cls, spec, data_options, options)


def to_yaml(cfg: AutoencoderRunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, default_flow_style=False)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_autoencoder_config(data: Any) -> bool:
    return isinstance(data, dict) and data.get("kind") == KIND


@dataclass
class AERun:
    """A trained autoencoder rebuilt from its run directory."""

    dir: Path
    resolved: AEResolved
    domain: Domain  # restored from domain_state.json (no data read)
    net: nn.Module  # eval mode, frozen
    meta: dict[str, Any]  # autoencoder.json
    sha256: str  # of autoencoder.safetensors


def load(ref: str | Path, *, key: str = "latent.autoencoder", registry=None) -> AERun:
    """Load the autoencoder run ``ref`` (a directory), with one clear message for a missing
    run, a diffusion run, a registered name that was never trained, or weights that do not fit."""
    from diffcore.platform import runs
    from diffcore.platform.registry import get_registry

    registry = registry if registry is not None else get_registry()
    path = Path(ref).expanduser()
    if not path.is_dir():
        if str(ref) in registry.autoencoders:
            spec = registry.autoencoders[str(ref)]
            raise UserError(f"{key}: {ref!r} is a registered autoencoder, not a trained one; train it first "
                            f"(`diffcore train-autoencoder --plugin RECIPE --autoencoder {ref} --out AE_RUN`, RECIPE one of the "
                            f"{spec.domain!r} domain's) and set {key} to AE_RUN")
        raise UserError(f"{key}: no autoencoder run at {path} (no such folder); train one with "
                        f"`diffcore train-autoencoder --plugin RECIPE --out {path}`")
    if not (path / runs.CONFIG).is_file():
        raise UserError(f"{key}: {path} is not an autoencoder run (no {runs.CONFIG}); pass the --out folder of `diffcore train-autoencoder`")
    data = load_yaml(path / runs.CONFIG, "autoencoder run config")
    if not is_autoencoder_config(data):
        raise UserError(f"{key}: {path} is a diffusion run, not an autoencoder run (its {runs.CONFIG} has no `kind: autoencoder`); "
                        "pass the --out folder of `diffcore train-autoencoder`")
    for name in (WEIGHTS, META):
        if not (path / name).is_file():
            raise UserError(f"{key}: the autoencoder run {path} has no {name}: its training did not finish; train it again")
    try:
        resolved = resolve(base=data, registry=registry)
        meta = json.loads((path / META).read_text(encoding="utf-8"))
        state = json.loads((path / runs.DOMAIN_STATE).read_text(encoding="utf-8")) if (path / runs.DOMAIN_STATE).is_file() else None
    except UserError as e:
        raise UserError(f"{key}: {path / runs.CONFIG}: {e}") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{key}: {path}: a JSON file cannot be read ({e}); train the autoencoder again") from None
    for name, obj in ((META, meta), (runs.DOMAIN_STATE, state)):
        if obj is not None and not isinstance(obj, dict):
            raise UserError(f"{key}: {path / name} holds a JSON {type(obj).__name__}, not an object; "
                            "restore the file written by `diffcore train-autoencoder`, or train the autoencoder again")
    domain = resolved.domain_cls(resolved.data_options, workdir=None)
    if state is not None:
        domain.load_state_dict(state)
    net = resolved.spec.build(resolved.options, domain)
    weights = path / WEIGHTS
    runs.load_weights(net, runs.read_weights(weights, like=net), weights)
    net.eval().requires_grad_(False)
    return AERun(path.resolve(), resolved, domain, net, meta, sha256(weights))
