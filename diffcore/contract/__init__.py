"""The plugin contract: what a plugin imports. Imports the mathematics only (and pydantic,
pluggy for the option models and the hook markers).

- :mod:`.domain`: :class:`Domain`, :class:`Options`, :data:`Batch`, :func:`cycle_classes`;
- :mod:`.hooks`: the hook specifications, ``hookimpl``, :class:`BackboneSpec`, :class:`Recipe`;
- :mod:`.errors`: :class:`UserError`, the error a user can fix;
- :mod:`.legacy`: calling a plugin written against an older form of a Domain method.
"""

from .domain import Batch, Domain, NoOptions, Options, cycle_classes
from .errors import UserError
from .hooks import PROJECT, BackboneSpec, DiffcoreHookspecs, Recipe, hookimpl, hookspec
from .legacy import PluginDeprecationWarning

__all__ = [
    "PROJECT", "BackboneSpec", "Batch", "DiffcoreHookspecs", "Domain", "NoOptions", "Options", "PluginDeprecationWarning", "Recipe",
    "UserError",
    "cycle_classes", "hookimpl", "hookspec",
]
