"""The plugin contract: what a plugin imports. Imports the mathematics only (and pydantic,
pluggy for the option models and the hook markers).

- :mod:`.domain`: :class:`Domain`, :class:`Options`, :data:`Batch`, :func:`cycle_classes`;
- :mod:`.hooks`: the hook specifications, ``hookimpl``, :class:`BackboneSpec`, :class:`Recipe`,
  :class:`AutoencoderSpec`;
- :mod:`.autoencoder`: the options and builder of the generic KL autoencoder plugins reuse;
- :mod:`.errors`: :class:`UserError`, the error a user can fix;
- :mod:`.legacy`: calling a plugin written against an older form of a Domain method.

Each name is imported on first use (PEP 562): :mod:`.errors` and :mod:`.legacy` need nothing
but Python, so the CLI can catch a :class:`UserError` without loading torch.
"""

_WHERE = {  # name -> its module
    **dict.fromkeys(("Batch", "Domain", "NoOptions", "Options", "cycle_classes"), "domain"),
    "UserError": "errors",
    **dict.fromkeys(("KLAutoencoderOptions", "build_kl_autoencoder"), "autoencoder"),
    **dict.fromkeys(("PROJECT", "AutoencoderSpec", "BackboneSpec", "DiffcoreHookspecs", "Recipe", "hookimpl", "hookspec"), "hooks"),
    "PluginDeprecationWarning": "legacy",
}

__all__ = [
    "PROJECT", "AutoencoderSpec", "BackboneSpec", "KLAutoencoderOptions", "build_kl_autoencoder", "Batch", "DiffcoreHookspecs", "Domain", "NoOptions", "Options", "PluginDeprecationWarning", "Recipe",
    "UserError",
    "cycle_classes", "hookimpl", "hookspec",
]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'diffcore.contract' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
