"""Old import paths keep working: before the layers became folders, every module sat directly
under ``diffcore`` (``diffcore.schedules``, ``diffcore.domain``, ``diffcore.registry``...).
Plugins and notebooks written against those paths import the same module objects through
this finder, which maps each old name to its new home when it is first imported (so
``import diffcore.schedules`` still loads torch only, and ``diffcore.registry`` still loads
pluggy only when asked for)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "diffcore.schedules": "diffcore.math.schedules",
    "diffcore.forward": "diffcore.math.forward",
    "diffcore.losses": "diffcore.math.losses",
    "diffcore.guidance": "diffcore.math.guidance",
    "diffcore.likelihood": "diffcore.math.likelihood",
    "diffcore.sde": "diffcore.math.sde",
    "diffcore.sampling": "diffcore.math.sampling",
    "diffcore.sampling.sde": "diffcore.math.sampling.reverse_sde",
    "diffcore.sampling.base": "diffcore.math.sampling",  # split into table, grid, plan, denoiser
    "diffcore.domain": "diffcore.contract.domain",
    "diffcore.hookspecs": "diffcore.contract.hooks",
    "diffcore.errors": "diffcore.contract.errors",
    "diffcore.registry": "diffcore.platform.registry",
    "diffcore.config": "diffcore.platform.config",
    "diffcore.runs": "diffcore.platform.runs",
    "diffcore.training": "diffcore.platform.training",
    "diffcore.cli": "diffcore.platform.cli",
    "diffcore.schedview": "diffcore.platform.schedview",
    "diffcore.conformance": "diffcore.testing.conformance",
}


# `python -m OLD` runs these modules (what the old module did when run as a script).
RUN_AS = {"diffcore.config": "diffcore.platform.reference"}  # prints the configuration reference


def new_name(name: str) -> str | None:
    """Where the module once called ``name`` lives now (None: it did not move)."""
    if name in MOVED:
        return MOVED[name]
    if name.startswith("diffcore.sampling."):  # diffcore.sampling.ddim, .base, ...
        return "diffcore.math.sampling." + name[len("diffcore.sampling."):]
    return None


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old name as the module at its new name (the same object)."""

    def find_spec(self, name, path=None, target=None):
        target_name = new_name(name)
        if target_name is None or importlib.util.find_spec(target_name) is None:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        module = importlib.import_module(new_name(spec.name))
        self._real_spec = getattr(module, "__spec__", None)
        return module

    def exec_module(self, module):
        # the import system has just set __spec__ to the old name's: give the module its own back
        module.__spec__ = self._real_spec

    def get_code(self, fullname):  # `python -m diffcore.cli` (and the processes DDP re-launches)
        spec = importlib.util.find_spec(RUN_AS.get(fullname) or new_name(fullname))
        return spec.loader.get_code(spec.name)


def install() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
