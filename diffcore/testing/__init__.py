"""The kit, for tests, benchmarks and plugin authors. Nothing in the library imports it.

- :mod:`.targets`: exact targets, Gaussian mixtures (isotropic or diagonal) and products of
  1-D mixtures with their exact denoisers under any schedule, and the energy distance (torch only);
- :mod:`.suite`: a dozen exact targets split into a tuning and a held-out half, and the z-score
  of a sample set against the true-vs-true spread (torch only);
- :mod:`.conformance`: the plugin conformance checks (``check_plugin``, ``check_domain``,
  ``check_backbone``, ``check_autoencoder``, ``check_sampler``, ``check_schedule``, ``check_options_model``), one
  module per family (:mod:`.plugin`, :mod:`.domain`, :mod:`.backbone`, :mod:`.autoencoder`, :mod:`.sampler`,
  :mod:`.schedule`, :mod:`.options`, with :mod:`.report`); plugins are loaded through the
  platform's one loader. Imported on first use, so that ``from diffcore.testing import
  GaussianMixture`` stays plain torch.
"""

from __future__ import annotations

from . import suite
from .targets import GaussianMixture, ProductMixture, energy_distance

_KIT = (
    "ConformanceError", "Report", "check_autoencoder", "check_backbone", "check_domain", "check_options_model", "check_plugin",
    "check_sampler", "check_schedule",
)

__all__ = ["GaussianMixture", "ProductMixture", "energy_distance", "suite", *_KIT]


def __getattr__(name: str):
    if name in _KIT:
        from . import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module 'diffcore.testing' has no attribute {name!r}")
