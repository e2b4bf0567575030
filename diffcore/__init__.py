"""diffcore: diffusion and flow generative models, faithful to the papers.

The mathematics is plain torch, usable from a notebook with any ``nn.Module``::

    import diffcore
    schedule = diffcore.schedules.get("cosine")
    loss = diffcore.DiffusionLoss(schedule, prediction="eps")(model, x0)
    x = diffcore.generate(model, torch.randn(16, 2), schedule, sampler="ddim", steps=50)

The house, in layers that import downwards only (docs/architecture.md):

- :mod:`diffcore.math`: schedules, forward process, denoiser, SDE, losses, guidance,
  likelihood, sampling. torch only; imported on first use of one of its names, so that
  ``import diffcore`` (and ``diffcore --help``) does not load torch.
- :mod:`diffcore.nn`: network building blocks. torch only.
- :mod:`diffcore.contract`: what a plugin imports (``Domain``, ``Options``, ``hookimpl``,
  ``BackboneSpec``, ``Recipe``, ``UserError``). Loaded on first use of one of its names, so
  ``import diffcore`` does not load pydantic or pluggy.
- :mod:`diffcore.platform`: the plugin loader, configs, runs, training, the CLI
  (``diffcore --help``).
- :mod:`diffcore.testing`: exact targets and the plugin conformance kit.

Old paths (``diffcore.schedules``, ``diffcore.domain``, ``diffcore.registry``...) still import
the same modules (:mod:`diffcore._compat`).
"""

from __future__ import annotations

from . import _compat

_compat.install()

__version__ = "0.1.0"

# Every public name is imported on first use (PEP 562), so that `import diffcore` (and with it
# `diffcore --help`, `diffcore --version`) does not load torch: name -> (module, attribute;
# None: the module itself).
_LAZY = {
    **{m: (f"diffcore.math.{m}", None) for m in ("forward", "guidance", "likelihood", "losses", "sampling", "schedules", "sde")},
    **{m: (f"diffcore.{m}", None) for m in ("contract", "math", "nn", "platform", "testing")},
    "q_sample": ("diffcore.math.forward", "q_sample"),
    "classifier_free": ("diffcore.math.guidance", "classifier_free"),
    **{n: ("diffcore.math.likelihood", n) for n in ("bits_per_dim", "log_likelihood")},
    "DiffusionLoss": ("diffcore.math.losses", "DiffusionLoss"),
    **{n: ("diffcore.math.sampling", n) for n in ("SamplingPlan", "ddim_invert", "edit", "generate", "slerp")},
    "SDE": ("diffcore.math.sde", "SDE"),
    # the contract's names (they need torch, pydantic and pluggy)
    **{n: ("diffcore.contract", n) for n in
       ("AutoencoderSpec", "BackboneSpec", "Batch", "Domain", "KLAutoencoderOptions", "NoOptions", "Options", "Recipe", "UserError",
        "build_kl_autoencoder", "cycle_classes", "hookimpl")},
    "load": ("diffcore.platform.api", "load"),  # the platform (pydantic, Lightning's config)
}

__all__ = [
    "AutoencoderSpec", "BackboneSpec", "Batch", "DiffusionLoss", "Domain", "KLAutoencoderOptions", "NoOptions", "Options", "Recipe", "SDE", "SamplingPlan", "UserError",
    "bits_per_dim", "build_kl_autoencoder", "classifier_free", "cycle_classes", "ddim_invert", "edit", "forward", "generate", "guidance", "hookimpl",
    "likelihood", "load", "log_likelihood", "losses", "nn", "q_sample", "sampling", "schedules", "sde", "slerp", "testing",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'diffcore' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
