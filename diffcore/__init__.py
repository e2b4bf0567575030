"""diffcore: diffusion and flow generative models, faithful to the papers.

The mathematics is plain torch, usable from a notebook with any ``nn.Module``::

    import diffcore
    schedule = diffcore.schedules.get("cosine")
    loss = diffcore.DiffusionLoss(schedule, prediction="eps")(model, x0)
    x = diffcore.generate(model, torch.randn(16, 2), schedule, sampler="ddim", steps=50)

The house, in layers that import downwards only (docs/architecture.md):

- :mod:`diffcore.math`: schedules, forward process, denoiser, SDE, losses, guidance,
  likelihood, sampling. torch only; imported here.
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

from . import nn  # noqa: E402
from .math import forward, guidance, likelihood, losses, sampling, schedules, sde  # noqa: E402
from .math.forward import q_sample  # noqa: E402
from .math.guidance import classifier_free  # noqa: E402
from .math.likelihood import bits_per_dim, log_likelihood  # noqa: E402
from .math.losses import DiffusionLoss  # noqa: E402
from .math.sampling import SamplingPlan, ddim_invert, edit, generate, slerp  # noqa: E402
from .math.sde import SDE  # noqa: E402

__version__ = "0.1.0"

# The contract's names, imported on first use (they need pydantic and pluggy).
_CONTRACT = ("BackboneSpec", "Batch", "Domain", "NoOptions", "Options", "Recipe", "UserError", "cycle_classes", "hookimpl")

__all__ = [
    "BackboneSpec", "Batch", "DiffusionLoss", "Domain", "NoOptions", "Options", "Recipe", "SDE", "SamplingPlan", "UserError",
    "bits_per_dim", "classifier_free", "cycle_classes", "ddim_invert", "edit", "forward", "generate", "guidance", "hookimpl",
    "likelihood", "load", "log_likelihood", "losses", "nn", "q_sample", "sampling", "schedules", "sde", "slerp", "testing",
]


def __getattr__(name: str):
    if name in _CONTRACT:
        from . import contract

        return getattr(contract, name)
    if name == "load":  # the platform (pydantic, Lightning's config): imported on first use
        from .platform.api import load

        return load
    if name == "testing":
        import importlib

        return importlib.import_module(".testing", __name__)
    raise AttributeError(f"module 'diffcore' has no attribute {name!r}")
