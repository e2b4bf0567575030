"""Checks of a whole plugin (:func:`check_plugin`): it is loaded by the platform's one plugin
loader (:func:`diffcore.platform.registry.dry_run`, which reports every failure in the words
``diffcore plugins`` would use), then everything it registers is checked by its family's
checks, and its recipes' defaults are resolved into run configs with the plugin in place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..contract.domain import Domain
from ..contract.errors import UserError
from .autoencoder import check_autoencoder
from .backbone import check_backbone
from .domain import check_domain
from .report import Report, _Checker, _describe, finish
from .sampler import check_sampler
from .schedule import check_schedule


def check_plugin(
    plugin: Any,
    name: str | None = None,
    *,
    domain_options: Mapping[str, Mapping[str, Any]] | None = None,
    sample_options: Mapping[str, Mapping[str, Any]] | None = None,
    backbone_options: Mapping[str, Mapping[str, Any]] | None = None,
    autoencoder_options: Mapping[str, Mapping[str, Any]] | None = None,
    autoencoder_steps: int = 100,
    edit_inputs: Mapping[str, list[str]] | None = None,
    edit_options: Mapping[str, Mapping[str, Any]] | None = None,
    evaluate: bool = False,
    sampler_schedules: tuple[str, ...] = ("vp", "cosine"),
    sampler_steps: Mapping[str, int] | None = None,
    raise_on_failure: bool = True,
) -> Report:
    """Check everything a plugin registers: ``plugin`` is the object its entry point names
    (usually the module with the ``@diffcore.hookimpl`` functions); ``name`` its entry-point
    name (an installed plugin of that name is left out while the object stands in for it).
    ``domain_options`` / ``sample_options`` map a domain's name to small options for it,
    ``sampler_steps`` maps a sampler's name to the steps it is checked with (default: its
    entry's ``check_steps``); ``edit_inputs`` / ``edit_options`` map a domain's name to inputs and ``EditOptions`` for
    its ``edit_batches`` (domains that support editing), ``backbone_options`` a backbone's name to options (keep them small: the checks build and run
    each backbone), ``autoencoder_options`` an autoencoder's name to options (each is fitted for
    ``autoencoder_steps`` steps). A backbone or autoencoder for a domain that another plugin
    provides is checked against that plugin's domain when it is installed (and skipped otherwise)."""
    from ..platform.registry import dry_run

    label = name or getattr(plugin, "__name__", type(plugin).__name__)
    rep = Report(f"plugin {label!r}")
    ck = _Checker(rep, "")
    domain_options, backbone_options = dict(domain_options or {}), dict(backbone_options or {})
    with dry_run(plugin, label) as trial:
        _check_loading(ck, plugin, trial)
        items, reg = trial.items, trial.registry
        own_domains: dict[str, Domain] = {}
        for cls in items["domains"].values():
            sub = check_domain(cls, domain_options.get(cls.name), sample_options=(sample_options or {}).get(cls.name),
                               edit_inputs=(edit_inputs or {}).get(cls.name), edit_options=(edit_options or {}).get(cls.name),
                               evaluate=evaluate, raise_on_failure=False)
            rep.extend(sub)
            if sub.domain is not None:
                own_domains[cls.name] = sub.domain
        for spec in items["backbones"].values():
            dom = own_domains[spec.domain] if spec.domain in own_domains else _installed_domain(rep, spec, items, reg, domain_options)
            if dom is not None:
                rep.extend(check_backbone(spec, dom, backbone_options.get(spec.name), raise_on_failure=False))
        for spec in items["autoencoders"].values():
            dom = own_domains[spec.domain] if spec.domain in own_domains else _installed_domain(rep, spec, items, reg, domain_options, "autoencoder")
            if dom is not None:
                rep.extend(check_autoencoder(spec, dom, (autoencoder_options or {}).get(spec.name), steps=autoencoder_steps,
                                             raise_on_failure=False))
        for sname, sampler in items["samplers"].items():
            rep.extend(check_sampler(sampler, sname, schedules=sampler_schedules, steps=(sampler_steps or {}).get(sname),
                                     raise_on_failure=False))
        for sname, factory in items["schedules"].items():
            rep.extend(check_schedule(factory, sname, raise_on_failure=False))
        _check_recipes(ck, items["recipes"].values(), reg)
    return finish(rep, raise_on_failure)


def _fix(status: str) -> str:
    """What to change, for a failure in the loader's words."""
    if "already registered" in status:
        return "choose another name (names are global, whatever the domain)"
    if status.startswith("failed to load: unknown hook"):
        return "rename the hook to one of the valid names (a misspelt hook is never called)"
    if status.startswith("failed to load"):
        return "the plugin must import without errors, and each hook take exactly one argument, `register`"
    return "a hook only calls register(...) with the right kind of object; keep heavy imports and work out of it"


def _check_loading(ck: _Checker, plugin: Any, trial: Any) -> None:
    """The loader's verdict, hooks left unmarked, and what was registered."""
    for status in trial.errors:
        ck.fail(status, _fix(status))
    if trial.info.ok:
        ck.ok("loads through diffcore's plugin loader")
    for attr in dir(plugin):
        if attr.startswith("diffcore_register") and attr not in trial.hooks and callable(getattr(plugin, attr, None)):
            ck.fail(f"{attr} is not marked with @diffcore.hookimpl, so diffcore never calls it", "decorate it with @diffcore.hookimpl")
    if not trial.hooks:
        ck.fail("implements no diffcore hook", "mark functions such as diffcore_register_domains(register) with @diffcore.hookimpl")
    for kind, items in trial.items.items():
        for key in items:
            ck.ok(f"registers {kind[:-1]} {key!r}")


def _installed_domain(rep: Report, spec: Any, items: Mapping, reg: Any, domain_options: Mapping, kind: str = "backbone") -> Domain | None:
    """For a backbone (autoencoder) of another plugin's domain: that domain, set up, if it is installed."""
    if spec.domain not in items["domains"] and spec.domain in reg.domains:
        sub = check_domain(reg.domains[spec.domain], domain_options.get(spec.domain), raise_on_failure=False)
        if sub.domain is None:
            rep.skipped.append(f"{kind} {spec.name!r}: the installed domain {spec.domain!r} did not set up: {'; '.join(sub.problems[:1])}")
            return None
        rep._keep += sub._keep
        return sub.domain
    rep.skipped.append(f"{kind} {spec.name!r}: domain {spec.domain!r} is not available (install the plugin that provides it)")
    return None


def _check_recipes(ck: _Checker, recipes: Any, reg: Any) -> None:
    """Each recipe names an available domain and a backbone for it; its defaults resolve into a
    valid run config (with the plugin's samplers and schedules in place)."""
    from ..platform.config import resolve

    for r in recipes:
        where = f"recipe {r.name!r}"
        if r.domain not in reg.domains:
            ck.skip(f"{where}: domain {r.domain!r} is not available (install the plugin that provides it)")
            continue
        if r.backbone not in reg.backbones:
            ck.fail(f"{where}: names backbone {r.backbone!r}, which is not registered", f"register it, or use one of {', '.join(sorted(reg.backbones))}")
            continue
        if reg.backbones[r.backbone].domain != r.domain:
            ck.fail(f"{where}: backbone {r.backbone!r} is for domain {reg.backbones[r.backbone].domain!r}, not {r.domain!r}",
                    "pair the recipe's domain with a backbone for it")
            continue
        try:
            resolve(plugin=r.name, registry=reg)
            ck.ok(f"{where}: defaults resolve into a valid run config")
        except UserError as e:
            ck.fail(f"{where}: its defaults do not make a valid run config: {e}", "fix Recipe.defaults (the keys and values of a run config)")
        except Exception as e:  # noqa: BLE001
            ck.fail(f"{where}: resolving its defaults raised {_describe(e)}")
