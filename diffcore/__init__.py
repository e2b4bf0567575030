"""diffcore: diffusion and flow generative models, faithful to the papers.

The mathematics is plain torch, usable from a notebook with any ``nn.Module``::

    import diffcore
    schedule = diffcore.schedules.get("cosine")
    loss = diffcore.DiffusionLoss(schedule, prediction="eps")(model, x0)
    x = diffcore.generate(model, torch.randn(16, 2), schedule, sampler="ddim", steps=50)

The CLI, configs, Lightning training and plugins build on it (``diffcore --help``).
"""

from . import forward, guidance, likelihood, nn, sampling, schedules, sde, testing  # noqa: F401
from .domain import Domain, NoOptions, Options, cycle_classes
from .errors import UserError
from .forward import q_sample
from .guidance import classifier_free
from .hookspecs import BackboneSpec, Recipe, hookimpl
from .likelihood import bits_per_dim, log_likelihood
from .losses import DiffusionLoss
from .sampling import ddim_invert, generate, slerp
from .sde import SDE

__version__ = "0.1.0"

__all__ = [
    "BackboneSpec", "DiffusionLoss", "Domain", "NoOptions", "Options", "Recipe", "SDE", "UserError",
    "bits_per_dim", "classifier_free", "cycle_classes", "ddim_invert", "forward", "generate", "guidance", "hookimpl",
    "likelihood", "log_likelihood", "nn", "q_sample", "sampling", "schedules", "sde", "slerp", "testing",
]
