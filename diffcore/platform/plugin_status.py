"""What the plugin loader (:mod:`.registry`) reports about the plugins: each one's status, the
messages about the ones that failed (a lookup of a name a failed plugin would have provided,
the one-line warning every command prints, strict mode), and the rule on built-in names.

**Built-in names.** diffcore's own plugins (the entry points of the ``diffcore`` distribution)
load first, and a third-party plugin may not take their names: an entry point named like one of
them, or a recipe, domain or backbone one of them registers, is refused (``diffcore plugins``
says why). ``DIFFCORE_OVERRIDE_BUILTINS=image-unet[,...]`` leaves those built-in plugins out, so
that a third-party plugin replaces them.

**Isolation.** A plugin that raises ``SystemExit`` (``sys.exit()``) or ``KeyboardInterrupt`` while
it is imported or registers is a failed plugin like one that raises an ordinary exception: it
does not take the command down.
"""

from __future__ import annotations

import difflib
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..contract.errors import UserError

STRICT_ENV = "DIFFCORE_STRICT_PLUGINS"
STRICT_FLAG = "--strict-plugins"
OVERRIDE_ENV = "DIFFCORE_OVERRIDE_BUILTINS"
BUILTIN_DIST = "diffcore"  # the distribution whose entry points are the built-in plugins
KINDS = ("recipes", "domains", "backbones", "autoencoders", "samplers", "schedules")
ISOLATED = (Exception, SystemExit, KeyboardInterrupt)  # what a plugin may raise without ending the process
OVERRIDDEN = "overridden"
_HERE = Path(__file__).parent


class PluginError(UserError):
    """A plugin failed to load or register: raised in strict mode, and when a name that a
    failed plugin would have provided is looked up."""


# ---------------------------------------------------------------- strict mode
_strict_flag = False  # --strict-plugins was given to this command


def strict_mode() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_strict_flag(on: bool) -> None:
    """Whether ``--strict-plugins`` was given: it turns strict mode on (through the variable,
    which the processes DDP re-launches inherit), and strict-mode messages then name the flag
    instead of the variable."""
    global _strict_flag
    _strict_flag = bool(on)
    if on:
        os.environ[STRICT_ENV] = "1"


def strict_fix() -> str:
    """How to skip broken plugins again, in the words the user used to ask for strict mode."""
    return f"drop {STRICT_FLAG} to skip broken plugins" if _strict_flag else f"unset {STRICT_ENV} to skip broken plugins"


def overrides() -> set[str]:
    """The built-in plugins that ``DIFFCORE_OVERRIDE_BUILTINS`` leaves out."""
    return {n.strip() for n in os.environ.get(OVERRIDE_ENV, "").split(",") if n.strip()}


def is_builtin(package: str | None) -> bool:
    return package is not None and package.lower().replace("_", "-") == BUILTIN_DIST


# ---------------------------------------------------------------- one plugin
@dataclass
class PluginInfo:
    """One plugin as ``diffcore plugins`` shows it."""

    name: str
    package: str | None = None  # the distribution that declares the entry point
    version: str | None = None
    status: str = "ok"  # "ok", or why the plugin was skipped (its error, a refused name, an override)
    provides: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    attempted: dict[str, list[str]] = field(default_factory=dict)  # what a failed plugin registered before it failed

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def builtin(self) -> bool:
        return is_builtin(self.package)

    @property
    def overridden(self) -> bool:
        """A built-in plugin left out by ``DIFFCORE_OVERRIDE_BUILTINS``: skipped, but not broken."""
        return self.status.startswith(OVERRIDDEN)

    @property
    def label(self) -> str:
        return "ok" if self.ok else OVERRIDDEN if self.overridden else "FAILED"


def admission(info: PluginInfo, builtins: set[str], loaded: dict[str, PluginInfo]) -> str | None:
    """Why a plugin is not loaded at all (its status), before it is imported; None if it may load.
    ``builtins``: the entry-point names of the built-in plugins; ``loaded``: the plugins so far."""
    if info.builtin and info.name in overrides():
        return f"{OVERRIDDEN}: left out by {OVERRIDE_ENV}, so that a third-party plugin may take its names"
    if not info.builtin and info.name in builtins and info.name not in overrides():
        return (f"refused: {info.name!r} is the name of a built-in plugin; rename the entry point, or set "
                f"{OVERRIDE_ENV}={info.name} to replace the built-in one")
    if info.name in loaded:
        return f"skipped: a plugin named {info.name!r} is already loaded (from {loaded[info.name].package})"
    return None


def taken(kind: str, name: str, owner: PluginInfo, plugin: PluginInfo | None) -> str:
    """The refusal of a registration whose name ``owner`` (a loaded plugin) already has."""
    if owner.builtin and not (plugin is not None and plugin.builtin):
        return (f"{kind[:-1]} {name!r} is already registered by the built-in plugin {owner.name!r}; choose another "
                f"name, or set {OVERRIDE_ENV}={owner.name} to replace the built-in plugin")
    return f"{kind[:-1]} {name!r} is already registered by plugin {owner.name!r}"


def describe(exc: BaseException, stack: list | None = None) -> str:
    """``Type: message (file:line)``: the innermost frame says where a plugin author looks
    (in the exception's traceback, or in ``stack`` where the exception was caught early)."""
    if isinstance(exc, SystemExit):
        text = f"SystemExit: the plugin called sys.exit({'' if exc.code is None else repr(exc.code)})"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frames = [
        f for f in (traceback.extract_tb(exc.__traceback__) if stack is None else stack)
        if Path(f.filename).parent != _HERE and not f.filename.startswith("<") and "importlib" not in f.filename
    ]
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


# ------------------------------------------------------------------ messages
def failure(info: PluginInfo) -> str:
    """``plugin 'X' failed to load: <error>; see `diffcore plugins```."""
    reason = info.status.removeprefix("failed to load: ")
    return f"plugin {info.name!r} failed to load: {reason}; see `diffcore plugins`"


def lookup(table: dict, name: str, what: str, kind: str, failed: list[PluginInfo] = (), hint: str = ""):
    """``table[name]``, or a :class:`UserError` listing the valid names; a name that belongs to a
    plugin that failed to load (a recipe named like it, or a name it registered before failing)
    says so instead."""
    if name in table:
        return table[name]
    for p in failed:
        if name in p.attempted.get(kind, ()) or (kind == "recipes" and name == p.name):
            raise PluginError(failure(p))
    valid = sorted(table)
    msg = f"unknown {what} {name!r}; valid: {', '.join(valid) if valid else '(none installed)'}"
    close = difflib.get_close_matches(name, valid, n=1)
    if close:
        msg += f" (did you mean {close[0]!r}?)"
    if failed:
        msg += f"; plugin(s) that failed to load, and may provide it: {', '.join(p.name for p in failed)} (see `diffcore plugins`)"
    elif hint:
        msg += f"; {hint}"
    raise UserError(msg)


def broken_warning(failed: list[PluginInfo]) -> str | None:
    """The one line every command prints when plugins are broken (None when none is)."""
    if not failed:
        return None
    names = ", ".join(p.name for p in failed)
    return (f"warning: {len(failed)} plugin(s) failed to load and were skipped: {names}; see `diffcore plugins` "
            f"({STRICT_FLAG} makes this an error)")
