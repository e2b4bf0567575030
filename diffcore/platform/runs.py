"""Run directories: their layout, loading a trained model safely, and generating from it.

A run directory (written by ``diffcore train``) holds::

    config.yaml          the resolved config (every key, plugin sections included)
    domain_state.json    what the domain computed from its data and sampling needs
    checkpoints/         Lightning checkpoints: last.ckpt (for --resume), step=N.ckpt
    ema.safetensors      the EMA weights of the backbone (what sampling uses)
    model.safetensors    the raw (non-EMA) weights
    metrics.csv          training metrics (Lightning's CSV logger)
    metrics.json         evaluation metrics (diffcore evaluate)
    previews/            preview samples written during/after training
    cache/               the domain's working folder

Loading never executes code from a file: weights come from safetensors, and a Lightning
checkpoint is read with ``torch.load(weights_only=True)``, which refuses any pickled object
that is not a tensor or a plain container. Anything that is not a checkpoint of this run's
backbone is refused with a :class:`~diffcore.errors.UserError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import Resolved, load_yaml, resolve, sampling_sets
from ..contract.domain import Batch, Domain
from ..contract.errors import UserError
from ..math.sampling import SamplingPlan
from ..math.torus import wrap

CONFIG = "config.yaml"
DOMAIN_STATE = "domain_state.json"
CHECKPOINTS = "checkpoints"
LAST_CKPT = "checkpoints/last.ckpt"
EMA_WEIGHTS = "ema.safetensors"
MODEL_WEIGHTS = "model.safetensors"
METRICS_JSON = "metrics.json"
PREVIEWS = "previews"
CACHE = "cache"
# Files whose presence means a folder already holds a run (train --out refuses it).
RUN_MARKERS = (CONFIG, CHECKPOINTS, EMA_WEIGHTS, DOMAIN_STATE, "metrics.csv")


RUN_DIR_ENV = "_DIFFCORE_DDP_RUN_DIR"  # how rank 0 tells the processes DDP launches where the run is


def launcher_rank() -> int:
    """This process's global rank as a launcher (Lightning's DDP, torchrun, SLURM) set it in
    the environment, known before Lightning is imported (the same variables Lightning reads)."""
    for key in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    # Lightning's own launcher on node NODE_RANK of several (MASTER_ADDR/NODE_RANK set by hand):
    # its first process has no LOCAL_RANK yet; any non-zero node is not rank 0.
    node, local = int(os.environ.get("NODE_RANK", 0) or 0), int(os.environ.get("LOCAL_RANK", 0) or 0)
    return node * max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1) or 1)) + local if node else local


def default_threads() -> int:
    """``OMP_NUM_THREADS`` where the user set it, else half the CPU cores this process may
    use, at least 1."""
    import os

    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 2
    return max(1, n // 2)


def use_threads(n: int | None) -> int:
    """Set torch's intra-op threads (``None``: :func:`default_threads`); returns the number."""
    import torch

    n = n or default_threads()
    torch.set_num_threads(n)
    return n


def keep_threads() -> None:
    """Before Lightning launches processes: the thread count set here holds in each (Lightning
    sets cores / processes threads in every process unless OMP_NUM_THREADS says otherwise)."""
    os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())


def holds_run(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in RUN_MARKERS)


# ----------------------------------------------------------------- checkpoints
def read_lightning_checkpoint(path: Path, expected: int | None = None) -> dict[str, Any]:
    """A Lightning ``.ckpt`` read with ``torch.load(weights_only=True)`` (no code runs), once its
    size in memory is known to be sane (:func:`.budget.check_checkpoint`; ``expected``: the bytes
    of the model's state, when known)."""
    from .budget import check_checkpoint

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    check_checkpoint(path, expected)
    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle protocol; we refuse or accept below
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for foreign objects, RuntimeError/EOFError for garbage
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Weights only load failed" in str(e) or "Unsupported global" in str(e):
            reason = (
                "it contains pickled Python objects other than tensors and plain containers, "
                "which could execute code when loaded; it was not loaded"
            )
        raise UserError(f"checkpoint {path} was refused: {reason}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise UserError(f"checkpoint {path} is not a Lightning checkpoint (no 'state_dict' mapping)")
    return ckpt


def _backbone_state(ckpt: dict[str, Any], path: Path, prefer_ema: bool = True) -> dict[str, torch.Tensor]:
    """The backbone's weights from a Lightning checkpoint of a :class:`DiffusionModule`
    (``ema.*`` keys, else ``backbone.*``)."""
    sd = ckpt["state_dict"]
    for prefix in (("ema.", "backbone.") if prefer_ema else ("backbone.", "ema.")):
        sub = {k[len(prefix):]: v for k, v in sd.items() if isinstance(k, str) and k.startswith(prefix)}
        if sub:
            return sub
    raise UserError(f"checkpoint {path} holds no diffcore model weights (no 'ema.' or 'backbone.' keys)")


def read_weights(path: Path, like: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a Lightning ``.ckpt`` file (EMA weights). With
    ``like`` (the model they are for), a file whose tensors do not fit it, or that would take far
    more memory than it, is refused before its tensors are read (:mod:`.budget`)."""
    from . import budget

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        shapes = budget.safetensors_shapes(path)  # the header only
        if like is not None and shapes is not None:
            check_fits(like, shapes, path)
        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # SafetensorError, OSError: a corrupt or foreign file
            raise UserError(f"checkpoint {path} is not a valid safetensors file: {e}") from None
    if path.suffix in (".ckpt", ".pt", ".pth"):
        return _backbone_state(read_lightning_checkpoint(path, budget.state_bytes(like) if like is not None else None), path)
    raise UserError(f"checkpoint {path}: unknown format {path.suffix!r}; use a .safetensors file or a Lightning .ckpt")


def load_weights(net: nn.Module, state: dict[str, Any], path: Path) -> None:
    """``net.load_state_dict(state)`` with a readable refusal when they do not fit."""
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f"checkpoint {path}: entries that are not tensors: {', '.join(bad[:5])}")
    check_fits(net, {k: tuple(v.shape) for k, v in state.items()}, path)
    check_values(net, state, path)
    net.load_state_dict(state, strict=True)


def check_values(net: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse tensors whose kind of number is not the model's (integers for float weights:
    load_state_dict would convert them silently) or that hold infinity or NaN, naming them."""
    own = net.state_dict()
    kind = [f"{k} ({v.dtype} for {own[k].dtype})" for k, v in state.items()
            if k in own and v.is_floating_point() != own[k].is_floating_point()]
    if kind:
        raise UserError(f"checkpoint {path}: tensors of the wrong kind of number: {', '.join(kind[:3])}; "
                        "the file was not written by diffcore, or was changed since")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise UserError(f"checkpoint {path}: {len(bad)} tensor(s) hold infinity or NaN (e.g. {', '.join(bad[:3])}); "
                        "the training diverged before it was saved: use an earlier checkpoint (--checkpoint RUN/checkpoints/step=N.ckpt)")


def check_fits(net: nn.Module, shapes: dict[str, tuple], path: Path) -> None:
    """Refuse a file's tensors (name -> shape) that do not fit ``net``, naming the keys."""
    parts = mismatch({k: tuple(v.shape) for k, v in net.state_dict().items()}, shapes)
    if parts:
        raise UserError(f"checkpoint {path} does not fit this run's backbone: {', '.join(parts)}")


def mismatch(own: dict[str, tuple], theirs: dict[str, tuple], where: str = "") -> list[str]:
    """How the tensor shapes ``theirs`` (a file's) differ from ``own`` (the model's), one part
    each for shape mismatches, missing and unexpected names (empty: they fit)."""
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    shapes = [f"{k} {theirs[k]}{where} vs {own[k]}" for k in own if k in theirs and theirs[k] != own[k]]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es) (e.g. {'; '.join(shapes[:2])})")
    if missing:
        parts.append(f"{len(missing)} missing tensor(s) (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {', '.join(unexpected[:3])})")
    return parts


def save_weights(net: nn.Module | dict[str, torch.Tensor], path: Path) -> None:
    """The module's state dict (or a state dict) as safetensors (cloned: safetensors refuses
    shared storage), written to a temporary file and renamed over ``path``: never half a file."""
    from safetensors.torch import save_file

    from .runfiles import atomic_write

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in (net if isinstance(net, dict) else net.state_dict()).items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt", "producer": "diffcore"}))


# ------------------------------------------------------------------------ runs
@dataclass
class Run:
    """A trained model rebuilt from its run directory."""

    dir: Path
    resolved: Resolved
    domain: Domain
    net: nn.Module
    weights: Path
    device: torch.device

    @property
    def config(self):
        return self.resolved.config

    def schedule(self):
        return self.resolved.schedule()

    def to(self, device) -> "Run":
        """The backbone and, for a latent run, its autoencoder (which decodes) moved to ``device``."""
        self.device = torch.device(device)
        self.net.to(self.device)
        if self.config.latent.autoencoder is not None:
            self.domain.autoencoder.to(self.device)
        return self


def pick_device(device: str | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_model(resolved: Resolved, run_dir: Path, *, state: dict[str, Any] | None = None) -> tuple[Domain, nn.Module]:
    """The run's domain and backbone, built through the plugins: the domain is set up from its
    data (training, ``state=None``) or restored from its saved ``state`` (sampling a run)."""
    domain = resolved.domain_cls(resolved.data_options, workdir=Path(run_dir) / CACHE)
    if resolved.config.latent.autoencoder is not None:  # latent diffusion: the domain seen through the autoencoder
        from . import latent

        domain = latent.view(domain, resolved, state, latent.saved_state(Path(run_dir)) if state is None else None)
        try:
            net = resolved.backbone_spec.build(resolved.backbone_options, domain)
        except UserError as e:
            raise UserError(f"with latent.autoencoder {domain.info['path']} (latent shape {domain.latent_shape}): {e}") from None
        latent.check_backbone(net, domain, resolved.backbone_spec.name)
        return domain, net
    if state is None:
        domain.setup()
    else:
        domain.load_state_dict(state)
    return domain, resolved.backbone_spec.build(resolved.backbone_options, domain)


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None, *, device: str | None = None,
             sets: Sequence[str] = ()) -> Run:
    """Rebuild a run's domain and backbone through the plugins and load its weights
    (``ema.safetensors``, or ``checkpoint``). ``sets``: ``--set data.KEY=VALUE`` items changing
    the domain's own sampling settings (:meth:`diffcore.Domain.sampling_settings`) for this
    load only; any other key is refused (the rest is fixed by training)."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise UserError(f"{run_dir} is not a run directory (no {CONFIG}); pass the --out folder of `diffcore train`")
    base = load_yaml(run_dir / CONFIG, "run config")
    if base.get("kind") == "autoencoder":
        raise UserError(f"{run_dir} is an autoencoder run (diffcore train-autoencoder); sample from a diffusion run trained on it "
                        f"(`diffcore train --plugin RECIPE --set latent.autoencoder={run_dir}`)")
    try:
        resolved = resolve(base=base)
    except UserError as e:
        raise UserError(f"{run_dir / CONFIG}: {e}") from None
    from . import latent

    state = latent.saved_state(run_dir, required=resolved.config.latent.autoencoder is not None)  # a JSON object, or None
    domain, net = build_model(resolved, run_dir, state=state)
    if sets:
        resolved = sampling_sets(sets, resolved, domain)
        domain, net = build_model(resolved, run_dir, state=state)  # the same weights' shapes: only sampling settings changed
    weights = Path(checkpoint) if checkpoint is not None else run_dir / EMA_WEIGHTS
    if checkpoint is None and not weights.is_file():
        last = run_dir / LAST_CKPT
        if not last.is_file():
            raise UserError(f"{run_dir} has no weights yet ({EMA_WEIGHTS} or {LAST_CKPT}); train it first or pass --checkpoint")
        weights = last  # a run that stopped before writing its EMA weights
    load_weights(net, read_weights(weights, like=net), weights)
    net.eval()
    dev = pick_device(device)
    return Run(run_dir, resolved, domain, net, weights, dev).to(dev)  # a latent run decodes on the sampling device


def _to(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(v, torch.Tensor) for v in obj):
        return type(obj)(v.to(device) for v in obj)
    return obj


def generate_batch(
    net: Callable,
    plan: SamplingPlan,
    domain: Domain,
    batch: Batch,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    seed: int | None = None,
    first: int = 0,
) -> torch.Tensor:
    """Generate ``x`` for one sampling batch of ``domain`` with ``net(x_t, t, cond)`` as
    ``plan`` says (its guidance scale is applied here, where the condition is known). A batch
    with ``init`` (shaped like ``x``: a domain's classical first guess) starts from it noised to
    ``strength`` of the plan's steps (SDEdit, :func:`diffcore.math.sampling.edits.edit`). The
    noise comes from ``generator``, or with ``seed`` from each sample's own generator, the
    batch's examples being samples ``first, first + 1, ...`` (:mod:`.generation`)."""
    b = _to(batch, device)
    like = torch.empty(tuple(b["shape"]), device=device)
    if seed is None:
        draw = lambda z: domain.noise(z, b, generator=generator)  # noqa: E731
    else:
        from .generation import per_sample_noise, sample_seed

        draw = per_sample_noise(domain, b, seed, first, device)
        generator = torch.Generator(device=device).manual_seed(sample_seed(seed, first, 1))  # a plugin sampler's own draws
    # plan.guide(net, None) is net(x, t, None): the unconditional model.
    model = plan.guide(net, b.get("cond"))
    if b.get("init") is not None:  # the domain's first guess, noised and denoised from there (SDEdit)
        from ..math.sampling.edits import edit

        x = edit(plan, model, draw(like), known=b["init"].to(like), strength=float(b.get("strength", 1.0)),
                 generator=generator, noise_fn=draw)
    else:
        x = plan.run(model, draw(like), generator=generator, noise_fn=draw)
    if getattr(domain, "period", None):  # sampled on the covering space: back onto the torus
        x = wrap(x, domain.period)
    mask = b.get("mask")
    return x * mask.to(x.dtype) if mask is not None else x


def class_ids(domain: Domain, classes: Sequence[str | int] | None) -> list[int] | None:
    """``--class`` values (label names or indices) as class ids."""
    if not classes:
        return None
    labels = domain.labels
    if labels is None:
        raise UserError(f"--class: the {domain.name!r} domain has no class labels")
    out = []
    for c in classes:
        if isinstance(c, str) and c in labels:
            out.append(labels.index(c))
        elif str(c).lstrip("-").isdigit() and 0 <= int(c) < len(labels):
            out.append(int(c))
        else:
            shown = ", ".join(labels[:20]) + (", ..." if len(labels) > 20 else "")
            raise UserError(f"--class {c!r}: unknown label; valid: {shown} (or an index 0..{len(labels) - 1})")
    return out


def resolve_plan(run: Run, plan: SamplingPlan | None, overrides: dict[str, Any]) -> SamplingPlan:
    """``plan``, or (the first API, before plans) the run's plan with keyword overrides such as
    ``sampler=``, ``steps=``, ``spacing=``, ``guidance=``, ``eta=``."""
    from .config import sampling_plan

    if plan is not None and overrides:
        raise TypeError(f"give a plan or keyword overrides ({', '.join(overrides)}), not both")
    if plan is not None:
        return plan
    eta = overrides.pop("eta", None)
    if eta is not None:
        overrides["options"] = {**overrides.get("options", {}), "eta": eta}
    return sampling_plan(run.config, key="cli", **{k: v for k, v in overrides.items() if v is not None})


def sample_fn(run: Run, plan: SamplingPlan | None = None, generator: torch.Generator | None = None, **overrides) -> Callable[[Batch], torch.Tensor]:
    """A function from a sampling batch to generated ``x`` (what ``Domain.evaluate`` takes),
    sampling as ``plan`` says (default: the run's own plan, with keyword ``overrides``)."""
    plan = resolve_plan(run, plan, overrides)

    def fn(batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            return generate_batch(run.net, plan, run.domain, batch, generator=generator, device=run.device)

    return fn


def __getattr__(name: str):
    """``runs.sample`` and ``runs.evaluate``, the names before :mod:`.generation` held them."""
    if name in ("sample", "evaluate"):
        from . import generation

        return getattr(generation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
