"""Calling the domain methods whose signature grew, for plugins written before it did.

The contract now reads ``write_samples(results, out_dir, options)`` (the options the samples
were asked with) and ``evaluate(sample_fn, num, out_dir, batch_size)`` (the run's or the
command's sampling batch size). Before, they were ``write_samples(results, out_dir)`` and
``evaluate(sample_fn, num, out_dir)``. The platform and the conformance kit call a domain
through :func:`write_samples` and :func:`evaluate` here: each reads the method's signature once
per class (again if the method is replaced) and calls a method of the old form in the old
form, with one :class:`PluginDeprecationWarning` that names the class and the new signature.
"""

from __future__ import annotations

import inspect
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: method -> (its signature now, how many positional arguments it takes besides self)
NEW_FORMS = {
    "write_samples": ("write_samples(self, results, out_dir, options)", 3),
    "evaluate": ("evaluate(self, sample_fn, num, out_dir, batch_size)", 4),
}

# domain class -> {method: (weak reference to the function read, whether it takes the new form)}
_seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class PluginDeprecationWarning(DeprecationWarning):
    """A plugin uses a form of the contract that still works but will go. Python hides
    DeprecationWarning outside ``__main__``; the ``diffcore`` command shows this one."""


def takes_new_form(domain: Any, method: str) -> bool:
    """Whether ``domain.<method>`` accepts the arguments of its current form. Read once per
    class and function; the first time an old form is seen, one :class:`PluginDeprecationWarning`."""
    bound = getattr(domain, method)
    fn = getattr(bound, "__func__", bound)
    seen = _seen.setdefault(type(domain), {})
    if method in seen and seen[method][0]() is fn:
        return seen[method][1]
    signature, positional = NEW_FORMS[method]
    try:
        inspect.signature(bound).bind(*range(positional))
        new = True
    except TypeError:
        new = False
    except ValueError:  # no signature to read (a C function): assume the current form
        new = True
    try:
        ref = weakref.ref(fn)
    except TypeError:  # a callable that takes no weak reference: hold it
        ref = lambda: fn  # noqa: E731
    seen[method] = (ref, new)
    if not new:
        _warn(domain, method, fn, signature)
    return new


def _warn(domain: Any, method: str, fn: Any, signature: str) -> None:
    cls = type(domain)
    sig = inspect.signature(getattr(domain, method))
    old = str(sig.replace(parameters=[p.replace(annotation=p.empty) for p in sig.parameters.values()],
                          return_annotation=sig.empty))
    text = (f"{cls.__module__}.{cls.__qualname__}.{method}{old} is the old form of the Domain contract; "
            f"define {signature} (diffcore calls the old form for now)")
    code = getattr(fn, "__code__", None)
    if code is None:
        warnings.warn(text, PluginDeprecationWarning, stacklevel=4)
        return
    # attributed to the plugin's own definition, so the warning points at the line to change
    warnings.warn_explicit(text, PluginDeprecationWarning, code.co_filename, code.co_firstlineno,
                           module=getattr(fn, "__module__", None) or cls.__module__)


def write_samples(domain: Any, results: list, out_dir: Path, options: Any = None) -> list[Path]:
    """``domain.write_samples(results, out_dir, options)``, or its old form without ``options``."""
    if takes_new_form(domain, "write_samples"):
        return domain.write_samples(results, out_dir, options)
    return domain.write_samples(results, out_dir)


def evaluate(domain: Any, sample_fn: Callable, num: int, out_dir: Path | None, batch_size: int) -> dict[str, float]:
    """``domain.evaluate(sample_fn, num, out_dir, batch_size)``, or its old form without
    ``batch_size`` (the domain then chooses its own)."""
    if takes_new_form(domain, "evaluate"):
        return domain.evaluate(sample_fn, num, out_dir, batch_size)
    return domain.evaluate(sample_fn, num, out_dir)
