"""Calling the domain methods whose signature grew, for plugins written before it did.

The contract now reads ``write_samples(results, out_dir, options)`` (the options the samples
were asked with) and ``evaluate(sample_fn, num, out_dir, batch_size)`` (the run's or the
command's sampling batch size). Before, they were ``write_samples(results, out_dir)`` and
``evaluate(sample_fn, num, out_dir)``. The platform and the conformance kit call a domain
through :func:`write_samples` and :func:`evaluate` here: each reads the method's signature and
calls a method of the old form in the old form, with one :class:`PluginDeprecationWarning`
per class and function that names the class and the new signature.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: method -> (its signature now, how many positional arguments it takes besides self)
NEW_FORMS = {
    "write_samples": ("write_samples(self, results, out_dir, options)", 3),
    "evaluate": ("evaluate(self, sample_fn, num, out_dir, batch_size)", 4),
}

_warned: set = set()  # (domain class, method, function) whose old form was reported


class PluginDeprecationWarning(DeprecationWarning):
    """A plugin uses a form of the contract that still works but will go. Python hides
    DeprecationWarning outside ``__main__``; the ``diffcore`` command shows this one."""


def takes_new_form(domain: Any, method: str) -> bool:
    """Whether ``domain.<method>`` accepts the arguments of its current form; the first time an
    old form of a class's function is seen, one :class:`PluginDeprecationWarning`."""
    bound = getattr(domain, method)
    signature, positional = NEW_FORMS[method]
    try:
        inspect.signature(bound).bind(*range(positional))
        return True
    except TypeError:
        pass
    except ValueError:  # no signature to read (a C function): assume the current form
        return True
    fn = getattr(bound, "__func__", bound)
    key = (type(domain), method, fn)
    if key not in _warned:
        _warned.add(key)
        _warn(domain, method, fn, signature)
    return False


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
