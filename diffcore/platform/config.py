"""Run configuration: pydantic models, resolution of the layers, and readable errors.

A run config has the core's sections (``diffusion``, ``training``, ``sampling``), the
recipe name (``plugin``) and two sections validated by the plugin's own models: ``data``
(the domain's ``Options``) and ``backbone`` (the backbone's ``Options``).

Resolution, lowest to highest priority:

1. the core's defaults (the models below);
2. the recipe's ``defaults`` (what the plugin author chose for the domain);
3. ``--config FILE`` (YAML);
4. each ``--set a.b=value`` in order (value parsed as YAML: ``--set training.lr=1e-3``,
   ``--set data.classes=[0,1]``);
5. the dedicated flags of ``diffcore train`` (``--max-steps``, ``--seed``, ...).

Mappings are merged key by key; any other value replaces the one below it. One exception:
a layer that changes ``diffusion.schedule`` drops the ``diffusion.schedule_options`` of the
layers below, which were meant for another schedule (its own options, if any, apply).

Every problem is reported as a :class:`~diffcore.errors.UserError` naming the key path and
what is allowed; nothing is written before the whole config is valid. Infinity and NaN are
refused everywhere, plugin sections included (:mod:`.validation`).

``python -m diffcore.platform.reference config`` prints the configuration reference (docs/configuration.md).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from diffcore.math import schedules as _schedules
from diffcore.contract.domain import Domain
from diffcore.contract.errors import UserError
from diffcore.math.forward import PREDICTIONS
from diffcore.contract.hooks import BackboneSpec, Recipe
from diffcore.math.losses import WEIGHTINGS, check_period as _period_fits, check_periodic_prediction
from diffcore.math import sampling as _sampling
from diffcore.platform.extensions import Extension
from diffcore.platform.layers import merge, parse_set, sets_to_dict  # noqa: F401  (the config's API: the CLI's and tests' names)
from diffcore.platform.messages import _did_you_mean, format_errors
from diffcore.platform.plugin_status import PluginError
from diffcore.platform.validation import SEED_MAX, check_hardware, require_finite  # noqa: F401  (check_hardware: for train)
from diffcore.platform.yamlfile import load_yaml  # noqa: F401  (the CLI's and runs' name)
from diffcore.math.sampling import SPACINGS, SamplingPlan

def _default_spacings() -> str:
    by: dict[str, list[str]] = {}
    for spec in _sampling.specs():
        if spec.owner is None:  # the built-in ones: the text must not depend on which plugins loaded first
            by.setdefault(spec.default_spacing, []).append(spec.name)
    return "; ".join(f"{sp} for {', '.join(n)}" for sp, n in sorted(by.items(), key=lambda kv: kv[0] != "logsnr"))


_DEFAULT_SPACINGS = _default_spacings()  # from the sampler table, never typed by hand
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true", "64")


class Section(BaseModel):
    """A config section: unknown keys, infinity and NaN are refused."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


class DiffusionConfig(Section):
    """The diffusion process and the training objective."""

    schedule: str = Field("cosine", description="Noise schedule: linear, cosine, vp, subvp, ve, flow, or one a plugin registers (`diffcore plugins`).")
    schedule_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword options of the schedule, e.g. `num_steps: 500` (linear, cosine), `beta_min`/`beta_max` (vp, subvp), `sigma_min`/`sigma_max` (ve).",
    )
    prediction: Literal[PREDICTIONS] = Field("eps", description="What the network predicts: eps (noise), x0 (clean data), v (alpha eps - sigma x0), score, velocity (flow matching; use with schedule flow).")
    weighting: Literal[WEIGHTINGS] = Field("uniform", description="Loss weighting over noise levels: uniform (plain MSE of the prediction), snr, min-snr (Hang et al. 2023).")
    min_snr_gamma: float = Field(5.0, gt=0, description="gamma of the min-snr weighting: the SNR weight is clipped at gamma.")


class TrainingConfig(Section):
    """Optimisation, hardware and what a run writes."""

    max_steps: int = Field(1000, ge=1, description="Number of optimiser steps (a resumed run continues up to this count).")
    batch_size: int = Field(64, ge=1, description="Examples per step (per device under DDP).")
    lr: float = Field(2e-4, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(0, ge=0, description="Steps of linear learning-rate warm-up from 0.")
    lr_schedule: Literal["constant", "cosine"] = Field("constant", description="Learning rate after the warm-up: constant, or cosine (half a cosine from lr down to lr_final_fraction * lr at max_steps).")
    lr_final_fraction: float = Field(0.0, ge=0, le=1, description="cosine: the learning rate at max_steps, as a fraction of lr.")
    grad_clip: float | None = Field(1.0, gt=0, description="Clip the gradient norm to this value; null disables clipping.")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="Decay of the exponential moving average of the weights (sampling uses the EMA weights); warmed up as min(decay, (1 + step) / (10 + step)).")
    precision: Literal[PRECISIONS] = Field("32-true", description="Lightning precision: 32-true, 16-mixed, bf16-mixed, ... (mixed precision needs a GPU).")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Random seed, 0 to 2**32 - 1 (what numpy and Lightning accept): the same seed and config give the same weights on CPU.")
    deterministic: bool = Field(True, description="Ask torch for deterministic algorithms (warn where an op has none).")
    accelerator: Literal["cpu", "gpu", "cuda", "mps", "auto"] = Field("auto", description="Where to train: cpu, gpu (cuda), mps or auto.")
    devices: int = Field(1, ge=1, description="Number of devices (processes under DDP on CPU).")
    strategy: str = Field("auto", description="Lightning strategy: auto, ddp, ddp_spawn, fsdp, ... (`ddp` with devices > 1 trains on several processes/GPUs/nodes; `fsdp` shards the backbone, its optimiser state and EMA with FSDP2, on GPUs and on CPU: docs/scaling.md).")
    num_nodes: int = Field(1, ge=1, description="Number of nodes for multi-node training (by hand: MASTER_ADDR, MASTER_PORT and NODE_RANK on each node; or torchrun/srun: docs/scaling.md).")
    num_workers: int = Field(0, ge=0, description="Data-loader worker processes (0 loads data in the training process).")
    checkpoint_every: int = Field(1000, ge=0, description="Save checkpoints/step=N.ckpt every N steps (0: only last.ckpt at the end).")
    preview_every: int = Field(0, ge=0, description="Write preview samples every N steps (0: only at the end of training).")
    preview_num: int = Field(16, ge=0, description="Number of preview samples (0 disables previews); training ends with one line saying what the previews cost (their count, seconds and share of the run).")
    preview_steps: int | None = Field(None, ge=1, description="Sampling steps of the previews, with the sampling section's sampler and spacing (its `times` are then not used): fewer steps make previews cheaper, e.g. 10; null: as the sampling section says.")
    log_every: int = Field(50, ge=1, description="Log the loss, lr, ema_decay and samples_per_s (examples per second) to metrics.csv and training.logger every N steps.")
    callbacks: list[Extension] = Field(default_factory=list, description="Lightning callbacks to add, each `{class: package.module.ClassName, args: {...}}` (a subclass of lightning.pytorch.callbacks.Callback from an installed module, never a file; args plain YAML data), e.g. `[{class: lightning.pytorch.callbacks.LearningRateMonitor, args: {logging_interval: step}}]`; `diffcore train` prints what it added (docs/cli.md: Callbacks and loggers).")
    logger: Extension | None = Field(None, description="A logger besides the run's own metrics.csv: csv, tensorboard, wandb or mlflow (written under the run directory; the last three need their package, e.g. `pip install \"diffcore[tensorboard]\"`; they also receive each preview's picture), or `{class: PATH, args: {...}}` naming a subclass of lightning.pytorch.loggers.Logger; null: metrics.csv only.")
    threads: int | None = Field(None, ge=1, le=1024, description="torch's intra-op CPU threads per process; null: OMP_NUM_THREADS if set, else half the CPU cores, at least 1 (torch's default of every core can make a step many times slower on a busy machine: docs/benchmarks.md).")
    compile: bool = Field(False, description="torch.compile the backbone for training: one compilation at the start (seconds to minutes; refused with one line where torch.compile cannot run, e.g. no C++ compiler on CPU), then faster steps where the backbone is large enough; checkpoints and weights hold the plain backbone, and previews and sampling are not compiled.")
    channels_last: bool = Field(False, description="Keep 4-D tensors (images: batch, channels, height, width) in the channels-last memory format: the backbone's 4-D weights and the batch's 4-D tensors; other tensors are left as they are. Usually helps convolutions on GPUs (tensor cores); the same loss up to rounding.")


class SamplingConfig(Section):
    """Defaults of `diffcore sample` / `evaluate` and of training previews."""

    sampler: str = Field("auto", description=f"Sampler: {', '.join(sp.name for sp in _sampling.specs() if sp.owner is None)}, or one a plugin registers (docs/samplers.md lists them with their options); `auto` (the default): the sampler, spacing and options recommended for the schedule (its own rows, else its family's) and `steps` model evaluations, chosen on the tuning half of the exact targets and reported on the held-out half (docs/benchmarks.md).")
    steps: int = Field(50, ge=1, description="Number of sampling steps: the model times, from the noise end to the data end.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="The sampler's own options, checked against its entry in the sampler table (docs/samplers.md), e.g. `eta: 0.5` for ddim, `corrector_steps: 2` for pc. A layer that changes `sampling.sampler` drops the options of the layers below.",
    )
    guidance: float = Field(1.0, ge=0, description="Classifier-free guidance scale w (1: plain conditional model; > 1 sharpens the condition); for `guidance_variant: cfg++` it is CFG++'s lambda, in [0, 1].")
    guidance_variant: Literal["cfg", "interval", "rescaled", "apg", "cfg++"] = Field("cfg", description="How the guidance is applied (docs/samplers.md, Guidance): cfg (Ho & Salimans 2022); interval: cfg only where sigma/alpha lies in (lo, hi] (Kynkaanniemi et al. 2024); rescaled: cfg with the std of the conditional x0 restored, mixed by phi (Lin et al. 2024); apg: the update's part parallel to the conditional x0 down-weighted by eta (Sadat et al. 2024); cfg++: the DDIM step renoised with the unconditional eps (Chung et al. 2024).")
    guidance_options: dict[str, Any] = Field(default_factory=dict, description="The guidance variant's options: interval: lo, hi; rescaled: phi, space (x0 or output); apg: eta, r (norm threshold, 0: none), beta (momentum, 0: none). A layer that changes `sampling.guidance_variant` drops the options of the layers below.")
    clip_x0: float | None = Field(None, gt=0, description="Clamp predicted x0 to [-v, v] during sampling (e.g. 1.0 for images in [-1, 1]); null: no clamp.")
    batch_size: int = Field(64, ge=1, description="Samples generated per batch.")
    threads: int | None = Field(None, ge=1, le=1024, description="torch's intra-op CPU threads for `diffcore sample` / `evaluate`; null: OMP_NUM_THREADS if set, else half the CPU cores, at least 1.")
    num: int = Field(16, ge=1, description="Samples `diffcore sample` writes when --num is not given.")
    spacing: Literal[SPACINGS] | None = Field(None, description=f"Where the sampling steps go: linspace (from the noisiest step to the least noisy), trailing (from the noisiest, N even steps stopping one short of the least noisy: Lin et al. 2024; diffusers' flow grid), leading (DDIM's; discrete schedules only), leading-multistep (what diffusers' multistep schedulers call leading; discrete only), logsnr (evenly in log-SNR), karras (EDM's rho = 7 noise levels), shifted (linspace with sigma/alpha tripled: SD3's time shift, more steps at high noise); null: the sampler's default ({_DEFAULT_SPACINGS}).")
    times: list[float] | None = Field(None, description="The model times themselves, strictly decreasing inside the schedule's range (e.g. `[0.999, 0.8, 0.5, 0.2, 0.02]`); they replace `steps` and `spacing`. null: use those.")


class LatentConfig(Section):
    """Latent diffusion (Rombach et al. 2022): train and sample in an autoencoder's latent space (docs/latent.md)."""

    autoencoder: str | None = Field(None, description="An autoencoder run directory written by `diffcore train-autoencoder` (of this recipe's domain and data shape): batches are encoded with it (frozen), the diffusion runs on the latents and samples are decoded before the domain writes them; the run records its path and weights' hash; the recipe's and a --config file's sampling.clip_x0 are dropped (a clamp of the data's range), one given by --set is kept. null: diffusion on the data itself.")
    scale_factor: float | None = Field(None, gt=0, description="Latents are multiplied by this before the diffusion (and divided after sampling); null: measured as 1 / std of the latents of the first `scale_batches` training batches (LDM's scale_factor), so they have unit variance. Saved in domain_state.json.")
    scale_batches: int = Field(4, ge=1, le=1000, description="Training batches the scale factor is measured on.")


class RunConfig(Section):
    """A whole run."""

    plugin: str = Field(description="The recipe to train (`diffcore plugins` lists them): picks the domain and the backbone.")
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig, description="The diffusion process and loss.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Optimisation, hardware, checkpoints, previews.")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="Sampling defaults.")
    data: dict[str, Any] = Field(default_factory=dict, description="The domain's options, validated by the domain's own model (see the recipe's `configs/RECIPE.yaml`).")
    backbone: dict[str, Any] = Field(default_factory=dict, description="The backbone's options, validated by the backbone's own model.")
    latent: LatentConfig = Field(default_factory=LatentConfig, description="Latent diffusion: the autoencoder run whose latents the diffusion works on.")


SECTIONS = ("plugin", "diffusion", "training", "sampling", "data", "backbone", "latent")


@dataclass
class Resolved:
    """A validated config and the plugin objects it names."""

    config: RunConfig
    recipe: Recipe
    domain_cls: type[Domain]
    backbone_spec: BackboneSpec
    data_options: BaseModel
    backbone_options: BaseModel
    plan: SamplingPlan  # the config's sampling section, resolved (previews; `diffcore sample` without flags)

    def schedule(self) -> _schedules.Schedule:
        d = self.config.diffusion
        return _schedules.get(d.schedule, **d.schedule_options)


# ---------------------------------------------------------------------- layers
def upgrade(merged: dict[str, Any]) -> dict[str, Any]:
    """Configs written before the sampler table had ``sampling.eta`` (DDIM's, ignored by every
    other sampler): it becomes ``sampling.options.eta`` where the sampler takes it, and is
    dropped where it does not (it had no effect there)."""
    s = merged.get("sampling")
    if isinstance(s, dict) and "eta" in s:
        eta = s.pop("eta")
        name = s.get("sampler", SamplingConfig.model_fields["sampler"].default)
        if isinstance(name, str) and name in _sampling.names() and "eta" in _sampling.get(name).options:
            opts = s.get("options")
            s["options"] = {**({"eta": eta}), **(opts if isinstance(opts, dict) else {})}
    return merged


# ------------------------------------------------------------------ validation
def resolve(
    plugin: str | None = None,
    config_file: str | Path | None = None,
    sets: list[str] | tuple[str, ...] = (),
    flags: dict[str, Any] | None = None,
    *,
    base: dict[str, Any] | None = None,
    registry=None,
) -> Resolved:
    """Resolve and validate a run config (see the module docstring for the order).

    ``flags``: nested overrides from dedicated CLI flags (``{"training": {"max_steps": 5}}``).
    ``base``: a saved, complete run config (``--resume``, loading a run): it replaces the
    recipe's defaults.
    """
    from diffcore.platform.registry import get_registry

    registry = registry if registry is not None else get_registry()
    layers: list[tuple[str, dict]] = []
    if base is not None:
        layers.append(("the run's config.yaml", base))
    if config_file is not None:
        layers.append((f"--config {config_file}", load_yaml(config_file)))
    if sets:
        layers.append(("--set", sets_to_dict(sets)))
    if flags:
        layers.append(("command-line flags", flags))

    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = merge(merged, layer)
    if plugin is not None:
        named = merged.get("plugin")
        if named is not None and named != plugin:
            raise UserError(f"--plugin {plugin!r} does not match plugin: {named!r} in the config; drop one of them")
        merged["plugin"] = plugin
    name = merged.get("plugin")
    if name is None:
        raise UserError("no plugin given: pass --plugin NAME (or set `plugin:` in the config file); `diffcore plugins` lists them")
    if not isinstance(name, str):
        raise UserError(f"plugin: expected a recipe name, got {name!r}")
    recipe = _keyed("plugin", registry.recipe, name)
    if base is None:
        # The recipe's and a config file's clamp are for the data, not for unit-variance latents:
        # a latent run keeps clip_x0 only when --set or a flag asks for it on the command line.
        asked = any(isinstance(layer.get("sampling"), dict) and "clip_x0" in layer["sampling"]
                    for src, layer in layers if src in ("--set", "command-line flags"))
        merged = merge(copy.deepcopy(recipe.defaults), merged)
        lat = merged.get("latent")
        if isinstance(lat, dict) and lat.get("autoencoder") and not asked and isinstance(merged.get("sampling"), dict):
            merged["sampling"].pop("clip_x0", None)
    merged = upgrade(merged)

    try:
        cfg = RunConfig.model_validate(merged)
    except ValidationError as e:
        raise UserError(format_errors(e, RunConfig)) from None
    require_finite(cfg.model_dump(exclude={"data", "backbone"}), "")  # inside the free-form mappings (schedule_options, ...)

    domain_cls = _keyed("plugin", registry.domain, recipe.domain)
    spec = _keyed("plugin", lambda n: registry.backbone(n, domain=recipe.domain), recipe.backbone)
    data_options = validate_section(domain_cls.Options, cfg.data, "data")
    check_period(domain_cls, cfg)
    backbone_options = validate_section(spec.Options, cfg.backbone, "backbone")
    cfg = cfg.model_copy(update={"data": data_options.model_dump(mode="json"), "backbone": backbone_options.model_dump(mode="json")})
    plan = sampling_plan(cfg, key="sampling")
    preview_plan(cfg)  # training.preview_steps: refused here, before any work
    return Resolved(cfg, recipe, domain_cls, spec, data_options, backbone_options, plan)


def _keyed(key: str, lookup, name):
    try:
        return lookup(name)
    except PluginError:  # "plugin 'X' failed to load: ...": whole as it is
        raise
    except UserError as e:
        raise UserError(f"{key}: {e}") from None


def validate_section(model: type[BaseModel], data: dict[str, Any], prefix: str) -> BaseModel:
    """A plugin's section, validated by its own model; infinity and NaN refused as in the core's."""
    try:
        options = model.model_validate(data)
    except ValidationError as e:
        raise UserError(format_errors(e, model, prefix)) from None
    require_finite(options.model_dump(), prefix)
    return options


def check_period(domain_cls: type[Domain], cfg: RunConfig) -> None:
    """A domain on a torus (``Domain.period``) needs a schedule with alpha = 1 (``ve``)."""
    period = getattr(domain_cls, "period", None)
    if period is None:
        return
    try:
        _period_fits(check_diffusion(cfg), period)
    except ValueError as e:
        raise UserError(f"diffusion.schedule: {e}; set diffusion.schedule=ve") from None
    try:
        check_periodic_prediction(cfg.diffusion.prediction, period)
    except ValueError as e:
        raise UserError(f"diffusion.prediction: {e}") from None


def check_diffusion(cfg: RunConfig) -> _schedules.Schedule:
    d = cfg.diffusion
    valid = _schedules.names()
    if d.schedule not in valid:
        raise UserError(f"diffusion.schedule: unknown schedule {d.schedule!r}; valid: {', '.join(valid)}" + _did_you_mean(d.schedule, valid))
    try:
        return _schedules.get(d.schedule, **d.schedule_options)
    except (ValueError, TypeError) as e:
        raise UserError(f"diffusion.schedule_options: {e}") from None


def sampling_plan(
    cfg: RunConfig,
    *,
    key: str = "sampling",
    sampler: str | None = None,
    steps: int | None = None,
    spacing: str | None = None,
    times: list[float] | None = None,
    options: dict[str, Any] | None = None,
    guidance: float | None = None,
    clip_x0: float | None = None,
    guidance_variant: str | None = None,
    guidance_options: dict[str, Any] | None = None,
) -> SamplingPlan:
    """The one place a sampling run is decided: the run's ``sampling:`` section, overridden by
    whatever is given (the command line's flags), resolved into a :class:`SamplingPlan` that
    the samplers execute as it is. A different ``sampler`` than the config's starts from its
    own option defaults (the config's options were meant for the config's sampler). Errors
    name ``key.sampler`` etc., or the command-line option (``--sampler``) when ``key="cli"``."""

    def name(f: str) -> str:
        flag = {"options": "option", "guidance_variant": "guidance-variant", "guidance_options": "guidance-option"}.get(f, f)
        return f"--{flag}" if key == "cli" else f"{key}.{f}"

    s = cfg.sampling
    chosen = sampler or s.sampler
    valid = [_sampling.AUTO, *_sampling.names()]
    if chosen not in valid:
        raise UserError(f"{name('sampler')}: unknown sampler {chosen!r}; valid: {', '.join(valid)}" + _did_you_mean(chosen, valid))
    opts = {**(s.options if chosen == s.sampler else {}), **(options or {})}
    schedule = check_diffusion(cfg)
    if times is not None and (steps is not None or spacing is not None):
        raise UserError(f"{name('times')}: give either times or steps/spacing, not both")
    if times is None and steps is None and spacing is None and chosen != _sampling.AUTO:
        times = s.times  # the config's own times, unless the command line asks for steps, a spacing or auto
    variant = guidance_variant or s.guidance_variant
    g_opts = {**(s.guidance_options if variant == s.guidance_variant else {}), **(guidance_options or {})}
    for f, value in (("guidance", guidance), ("clip_x0", clip_x0), ("times", times), ("options", opts),
                     ("guidance_options", g_opts)):
        require_finite(value, name(f))
    if guidance is not None and guidance < 0:
        raise UserError(f"{name('guidance')}: must be >= 0 (got {guidance}); 1 is the plain conditional model, > 1 sharpens the condition")
    try:
        plan = SamplingPlan.make(
            schedule, chosen, None if times is not None else s.steps if steps is None else steps,
            None if times is not None else s.spacing if spacing is None else spacing, opts, times=times,
            prediction=cfg.diffusion.prediction, clip_x0=s.clip_x0 if clip_x0 is None else clip_x0,
            guidance=s.guidance if guidance is None else guidance, guidance_variant=variant, guidance_options=g_opts,
        )
    except ValueError as e:
        msg = str(e)
        field = ("guidance_variant" if msg.startswith("unknown guidance variant")
                 else "guidance_options" if msg.startswith("guidance variant")
                 else "guidance" if msg.startswith("guidance scale")
                 else "sampler" if msg.startswith("sampler 'auto'") else "options" if "option" in msg
                 else "times" if msg.startswith("times") else "spacing" if "spacing" in msg else "steps")
        raise UserError(f"{name(field)}: {msg.removeprefix(field + ': ')}") from None
    least = _sampling.get(plan.sampler).min_steps
    if plan.steps < least:
        raise UserError(f"{name('steps')}: sampler {plan.sampler!r} needs at least {least} steps to stay on the data's scale "
                        f"(got {plan.steps}; docs/samplers.md); raise the steps or choose a deterministic sampler (e.g. auto)")
    return plan


def preview_plan(cfg: RunConfig) -> SamplingPlan:
    """The plan of training previews: the sampling section's, with ``training.preview_steps``
    steps where that is set."""
    steps = cfg.training.preview_steps
    if steps is None:
        return sampling_plan(cfg)
    try:
        return sampling_plan(cfg, steps=steps)
    except UserError as e:
        raise UserError(f"training.preview_steps={steps}: {str(e).removeprefix('sampling.steps: ')}") from None


# ------------------------------------------------------------------- output
def to_yaml(cfg: RunConfig) -> str:
    """The resolved config as YAML, sections in a fixed order."""
    data = cfg.model_dump(mode="json")
    ordered = {k: data[k] for k in SECTIONS if k in data}
    return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False)


def write_yaml(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(to_yaml(cfg), encoding="utf-8")


def sampling_sets(sets: list[str] | tuple[str, ...], resolved: Resolved, domain) -> Resolved:
    """``resolved`` with sample/evaluate's ``--set data.KEY=VALUE`` items applied, once each is of
    that form and KEY is one of ``domain.sampling_settings()`` (over the config as resolved, so
    what reading the saved one said is not said again)."""
    keys = []
    for item in sets:
        key, sep, _ = item.partition("=")
        keys.append(key.strip())
        if not sep:
            raise UserError(f"--set {item!r}: expected data.KEY=VALUE, e.g. --set data.sampling_pool=5 (`--domain-help` lists the keys)")
        if not keys[-1].startswith("data.") or keys[-1].count(".") != 1:
            raise UserError(f"--set {keys[-1]}: only the run's sampling settings can be changed here (data.KEY=VALUE; "
                            "`--domain-help` lists them); the rest of RUN/config.yaml is fixed by training")
    allowed = domain.sampling_settings()
    for key in keys:
        if key[len("data."):] not in allowed:
            listed = ", ".join(f"data.{k}" for k in allowed) or "none"
            raise UserError(f"--set {key}: not a sampling setting of this run's {domain.name!r} domain (those are: {listed}); "
                            "the rest of RUN/config.yaml is fixed by training")
    try:
        return resolve(base=resolved.config.model_dump(mode="json"), sets=list(sets))
    except UserError as e:
        raise UserError(str(e) if str(e).startswith("--set") else f"--set: {e}") from None
