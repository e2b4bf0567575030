"""The plugin registry: what the installed plugins provide, found through entry points.

Plugins are modules declared in the entry-point group ``diffcore`` (see
:mod:`diffcore.hookspecs`). They are loaded one by one, and each plugin's hooks are called
one by one, so that a plugin that fails to import, or whose hook raises or registers a
name that is already taken, is reported (``diffcore plugins``) and skipped without taking
the others down -- pluggy's own ``load_setuptools_entrypoints`` stops at the first failure.
A failed plugin contributes nothing: its registrations are staged and only committed when
all of its hooks succeeded.

Set ``DIFFCORE_STRICT_PLUGINS=1`` (the CLI's ``--strict-plugins``) to turn any such failure
into an error, which is what a plugin author wants while developing one. The built-in plugins
load first and keep their names; what a plugin's status says, and the messages about failed
plugins, are in :mod:`.plugin_status`.

The registry is built lazily on first use and cached (:func:`get_registry`). Tests add a
plugin object for one test with :func:`registered_plugin`; the conformance kit tries one with :func:`dry_run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata as md
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ..math import sampling as _sampling
from ..math import schedules as _schedules
from ..contract.domain import Domain
from ..contract.errors import UserError
from ..contract.hooks import PROJECT, AutoencoderSpec, BackboneSpec, DiffcoreHookspecs, Recipe
from .plugin_status import (  # noqa: F401  (STRICT_ENV, OVERRIDE_ENV, broken_warning: the registry's API)
    ISOLATED, KINDS, OVERRIDE_ENV, STRICT_ENV, PluginError, PluginInfo, admission, broken_warning, describe, is_builtin,
    lookup, strict_fix, strict_mode, taken,
)


@dataclass
class Registry:
    """Everything the plugins provide, by name."""

    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    recipes: dict[str, Recipe] = field(default_factory=dict)
    domains: dict[str, type[Domain]] = field(default_factory=dict)
    backbones: dict[str, BackboneSpec] = field(default_factory=dict)
    autoencoders: dict[str, AutoencoderSpec] = field(default_factory=dict)

    # Samplers and schedules live in the mathematics' own tables (diffcore.sampling.get,
    # diffcore.schedules.get), where the loader puts the plugins' ones; these are views.
    @property
    def samplers(self) -> dict[str, _sampling.SamplerSpec]:
        """The plugins' samplers (entries of the sampler table), by name."""
        return {n: _sampling.get(n) for n in self._provided("samplers") if n in _sampling.names()}

    @property
    def schedules(self) -> dict[str, Callable[..., Any]]:
        """The plugins' schedule factories, by name."""
        return {n: _schedules.factory(n) for n in self._provided("schedules") if n in _schedules.names()}

    def _provided(self, kind: str) -> list[str]:
        return [n for p in self.plugins.values() if p.ok for n in p.provides[kind]]

    # ---------------------------------------------------------------- lookups
    def recipe(self, name: str) -> Recipe:
        return lookup(self.recipes, name, "plugin (recipe)", "recipes", self.failed(), "run `diffcore plugins` to see what is installed")

    def domain(self, name: str) -> type[Domain]:
        return lookup(self.domains, name, "domain", "domains", self.failed())

    def backbone(self, name: str, domain: str | None = None) -> BackboneSpec:
        spec = lookup(self.backbones, name, "backbone", "backbones", self.failed())
        if domain is not None and spec.domain != domain:
            fits = sorted(n for n, b in self.backbones.items() if b.domain == domain)
            raise UserError(
                f"backbone {name!r} is for domain {spec.domain!r}, not {domain!r}; "
                f"backbones for {domain!r}: {', '.join(fits) or '(none)'}"
            )
        return spec

    def autoencoder(self, name: str, domain: str | None = None) -> AutoencoderSpec:
        spec = lookup(self.autoencoders, name, "autoencoder", "autoencoders", self.failed())
        if domain is not None and spec.domain != domain:
            fits = sorted(n for n, a in self.autoencoders.items() if a.domain == domain)
            raise UserError(f"autoencoder {name!r} is for domain {spec.domain!r}, not {domain!r}; "
                            f"autoencoders for {domain!r}: {', '.join(fits) or '(none)'}")
        return spec

    def failed(self) -> list[PluginInfo]:
        """The broken plugins (a built-in one left out by DIFFCORE_OVERRIDE_BUILTINS is not)."""
        return [p for p in self.plugins.values() if not p.ok and not p.overridden]


# ------------------------------------------------------------------- building
@dataclass
class _Candidate:
    """A plugin to load: an entry point (loaded lazily) or an object registered in-process."""

    name: str
    load: Callable[[], Any]
    package: str | None = None
    version: str | None = None


def _entry_point_candidates() -> list[_Candidate]:
    out = []
    for ep in md.entry_points(group=PROJECT):
        dist = getattr(ep, "dist", None)
        out.append(
            _Candidate(ep.name, ep.load, dist.metadata["Name"] if dist else None, dist.version if dist else None)
        )
    return out


class _Staging:
    """One plugin's registrations, committed only if all its hooks succeed; ``errors`` holds
    each failure (its status text and exception). With ``keep_going`` (a dry run) a refused
    ``register()`` call is recorded and the hook goes on."""

    def __init__(self, plugin: str, reg: Registry, keep_going: bool = False):
        self.plugin, self.reg, self.keep_going = plugin, reg, keep_going
        self.items: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
        self.errors: list[tuple[str, BaseException | None]] = []
        self.hooks: list[str] = []  # the diffcore_* hooks pluggy found on the plugin object

    def callback(self, hook: str) -> Callable[..., None]:  # the `register` handed to `hook`
        method = getattr(self, _HOOKS[hook])
        if not self.keep_going:
            return method

        def register(*args, **kwargs) -> None:
            try:
                method(*args, **kwargs)
            except ISOLATED as exc:  # the caller's line, as if the hook had raised it
                self.errors.append((f"failed in {hook}: {describe(exc, traceback.extract_stack())}", exc))

        return register

    def _owner(self, kind: str, name: str) -> PluginInfo | None:
        return next((p for p in self.reg.plugins.values() if p.ok and name in p.provides[kind]), None)

    def add(self, kind: str, name: str, obj: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{kind[:-1]} name must be a non-empty string, got {name!r}")
        if name in self.items[kind]:
            raise ValueError(f"registers {kind[:-1]} {name!r} twice")
        owner = self._owner(kind, name)
        if owner is not None:
            raise ValueError(taken(kind, name, owner, self.reg.plugins.get(self.plugin)))
        if (kind == "schedules" and name in _schedules.names()) or (kind == "samplers" and name in _sampling.names()):
            raise ValueError(f"{kind[:-1]} {name!r} is already registered by diffcore")
        self.items[kind][name] = obj

    # the `register` callbacks handed to each hook
    def domain(self, cls) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Domain)):
            raise TypeError(f"register() expects a Domain subclass, got {cls!r}")
        self.add("domains", getattr(cls, "name", None), cls)

    def backbone(self, spec) -> None:
        if not isinstance(spec, BackboneSpec):
            raise TypeError(f"register() expects a BackboneSpec, got {spec!r}")
        self.add("backbones", spec.name, spec)

    def autoencoder(self, spec) -> None:
        if not isinstance(spec, AutoencoderSpec):
            raise TypeError(f"register() expects an AutoencoderSpec, got {spec!r}")
        self.add("autoencoders", spec.name, spec)

    def recipe(self, recipe) -> None:
        if not isinstance(recipe, Recipe):
            raise TypeError(f"register() expects a Recipe, got {recipe!r}")
        self.add("recipes", recipe.name, recipe)

    def sampler(self, spec, fn=None) -> None:
        """``register(SamplerSpec(...))``, or ``register(name, fn)`` for a bare function of the
        first convention (wrapped by :func:`diffcore.sampling.from_function`)."""
        if isinstance(spec, _sampling.SamplerSpec) and fn is None:
            self.add("samplers", spec.name, dataclasses.replace(spec, owner=self.plugin))
            return
        if isinstance(fn, _sampling.SamplerSpec):  # register("new-name", another entry)
            self.add("samplers", spec, dataclasses.replace(fn, name=spec, owner=self.plugin))
            return
        if not callable(fn):
            raise TypeError(f"sampler {spec!r}: expected register(SamplerSpec(...)) or register(name, function), got {fn!r}")
        if not isinstance(spec, str):
            raise ValueError(f"sampler name must be a non-empty string, got {spec!r}")
        self.add("samplers", spec, _sampling.from_function(spec, fn, owner=self.plugin))

    def schedule(self, name, factory) -> None:
        if not callable(factory):
            raise TypeError(f"schedule {name!r}: expected a factory, got {factory!r}")
        self.add("schedules", name, factory)


_HOOKS = {
    "diffcore_register_domains": "domain",
    "diffcore_register_backbones": "backbone",
    "diffcore_register_recipes": "recipe",
    "diffcore_register_autoencoders": "autoencoder",
    "diffcore_register_samplers": "sampler",
    "diffcore_register_schedules": "schedule",
}


_OWN = ("recipes", "domains", "backbones", "autoencoders")  # the kinds the registry holds itself


def build_registry(candidates: Iterable[_Candidate] | None = None, *, strict: bool | None = None) -> Registry:
    """Load the plugins (default: the ``diffcore`` entry points) into a fresh registry.

    Plugin samplers and schedules are added to :mod:`diffcore.sampling` and
    :mod:`diffcore.schedules`; :func:`release` takes them out again.
    """
    strict = strict_mode() if strict is None else strict
    reg = Registry()
    try:
        _load_all(reg, _entry_point_candidates() if candidates is None else candidates, strict)
    except PluginError:
        release(reg)  # strict mode: leave the core's registries as they were
        raise
    return reg


def _manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(DiffcoreHookspecs)
    return pm


def _load_all(reg: Registry, candidates: Iterable[_Candidate], strict: bool) -> None:
    pm = _manager()
    candidates = sorted(candidates, key=lambda c: not is_builtin(c.package))  # the built-in plugins keep their names
    builtins = {c.name for c in candidates if is_builtin(c.package)}
    for cand in candidates:
        info = PluginInfo(cand.name, cand.package, cand.version)
        info.status = admission(info, builtins, reg.plugins) or "ok"
        if not info.ok:
            reg.plugins[f"{cand.name} ({cand.package})" if cand.name in reg.plugins or info.overridden else cand.name] = info
            if not info.overridden:
                _fail(info, None, strict)
            continue
        reg.plugins[cand.name] = info
        staging = _stage(pm, cand, _Staging(cand.name, reg))
        if staging.errors:
            info.status = staging.errors[0][0]
            info.attempted = {kind: sorted(items) for kind, items in staging.items.items() if items}
            _fail(info, staging.errors[0][1], strict)
        else:
            _commit(reg, info, staging)


def _stage(pm: pluggy.PluginManager, cand: _Candidate, staging: _Staging) -> _Staging:
    """Load a plugin and call its hooks into ``staging``; nothing is committed. The loader
    stops at the first failure; a dry run (``staging.keep_going``) records them all."""
    try:
        obj = cand.load()
        pm.register(obj, name=cand.name)
    except ISOLATED as exc:  # an import error, sys.exit(), a hook that does not match its spec...
        staging.errors.append((f"failed to load: {describe(exc)}", exc))
        return staging
    callers = pm.get_hookcallers(obj) or []
    staging.hooks = sorted(c.name for c in callers)
    unknown = sorted(c.name for c in callers if not c.has_spec())
    if unknown:  # most likely a typo in a hook's name, which pluggy would ignore silently
        staging.errors.append((f"failed to load: unknown hook(s) {', '.join(unknown)}; valid: {', '.join(_HOOKS)}", None))
    for hook in _HOOKS:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            if impl.plugin_name == cand.name and (staging.keep_going or not staging.errors):
                try:  # called directly, not through pm.hook, so a raise is this plugin's alone
                    impl.function(**{arg: staging.callback(hook) for arg in impl.argnames})
                except ISOLATED as exc:
                    staging.errors.append((f"failed in {hook}: {describe(exc)}", exc))
    if staging.errors:
        pm.unregister(obj)
    return staging


def _fail(info: PluginInfo, exc: BaseException | None, strict: bool) -> None:
    if strict:
        raise PluginError(f"plugin {info.name!r}: {info.status} ({strict_fix()})") from exc


def _commit(reg: Registry, info: PluginInfo, staging: _Staging) -> None:
    for kind, items in staging.items.items():
        if kind in _OWN:
            getattr(reg, kind).update(items)
        info.provides[kind] = sorted(items)
    for spec in staging.items["samplers"].values():
        _sampling.register(spec)
    for name, factory in staging.items["schedules"].items():
        _schedules.register(name, factory)


def release(reg: Registry) -> None:
    """Take a registry's plugin samplers and schedules out of the mathematics' tables."""
    for info in reg.plugins.values():
        if info.ok:
            _release(info)


def _release(info: PluginInfo) -> None:
    for name in info.provides["samplers"]:
        _sampling.unregister(name)
    for name in info.provides["schedules"]:
        _schedules.unregister(name)


# --------------------------------------------------------------------- cache
_CACHE: Registry | None = None
_EXTRA: list[_Candidate] = []  # plugin objects registered in-process (tests)


def get_registry() -> Registry:
    """The registry of the installed plugins (built on first use, then cached)."""
    global _CACHE
    if _CACHE is None:
        _CACHE = build_registry(_entry_point_candidates() + list(_EXTRA))
    return _CACHE


def reset_registry() -> None:
    """Forget the cached registry (the next :func:`get_registry` rebuilds it)."""
    global _CACHE
    if _CACHE is not None:
        release(_CACHE)
    _CACHE = None


@contextlib.contextmanager
def registered_plugin(obj: Any, name: str, *, package: str | None = None, version: str | None = None) -> Iterator[Registry]:
    """Add a plugin object (a module, class or instance with hook implementations) for the
    duration of a ``with`` block, rebuilding the registry on entry and on exit::

        with registered_plugin(MyPlugin(), "my-plugin") as reg:
            assert "my-recipe" in reg.recipes
    """
    cand = _Candidate(name, lambda: obj, package, version)
    _EXTRA.append(cand)
    reset_registry()
    try:
        yield get_registry()
    finally:
        _EXTRA.remove(cand)
        reset_registry()


@dataclass
class DryRun:
    """One plugin object as :func:`dry_run` loaded it."""

    info: PluginInfo  # its status (the first failure, as ``diffcore plugins`` would show it) and what it provides
    errors: list[str]  # every failure, in the loader's words
    hooks: list[str]  # the diffcore_* hooks pluggy found on the object, misspelt ones included
    items: dict[str, dict[str, Any]]  # what it registered, by kind and name (refused registrations left out)
    registry: Registry  # the installed plugins with these items added


@contextlib.contextmanager
def dry_run(obj: Any, name: str) -> Iterator[DryRun]:
    """Load one plugin object as the loader does, against the installed plugins, for the
    conformance kit: it goes on past a failing hook or a refused ``register()`` call, so that
    every failure is reported, and adds what did register, whatever failed, to a copy of the
    installed registry and (while the block runs) its samplers and schedules to the
    mathematics' tables. An installed plugin called ``name`` is left out for the block (the
    object stands in for it). Nothing of it stays afterwards."""
    installed = get_registry()
    own = installed.plugins.get(name, PluginInfo(name))  # its provides are empty unless it loaded
    reg = Registry({**installed.plugins, name: PluginInfo(name)},
                   **{kind: {n: v for n, v in getattr(installed, kind).items() if n not in own.provides[kind]}
                      for kind in _OWN})
    hidden = [_sampling.get(n) for n in own.provides["samplers"]], [(n, _schedules.factory(n)) for n in own.provides["schedules"]]
    _release(own)
    info = reg.plugins[name]
    try:
        staging = _stage(_manager(), _Candidate(name, lambda: obj), _Staging(name, reg, keep_going=True))
        _commit(reg, info, staging)
        info.status = staging.errors[0][0] if staging.errors else info.status
        yield DryRun(info, [text for text, _ in staging.errors], staging.hooks, staging.items, reg)
    finally:
        _release(info)
        for spec in hidden[0]:
            _sampling.register(spec)
        for n, factory in hidden[1]:
            _schedules.register(n, factory)
