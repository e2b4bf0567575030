"""Checks of an options model: a domain's ``Options``/``SampleOptions``, a backbone's ``Options``."""

from __future__ import annotations

import json
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from .report import Report, _Checker, _describe, _Stop, finish

_UNKNOWN_KEY = "__conformance_unknown_key__"


def _errors(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())


def check_options_model(model: Any, where: str = "Options", *, report: Report | None = None,
                        raise_on_failure: bool = True) -> Report:
    """An options model (a domain's ``Options``/``SampleOptions``, a backbone's ``Options``):
    a pydantic model that refuses unknown keys, whose defaults validate and survive the JSON
    round trip of a run's config.yaml."""
    rep = report if report is not None else Report(where)
    ck = _Checker(rep, where)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        ck.fail(f"is {model!r}, not a pydantic model class", "subclass diffcore.Options and declare the fields with pydantic.Field")
        return finish(rep, raise_on_failure and report is None)
    try:
        model.model_validate({_UNKNOWN_KEY: 1})
        refused = False
    except ValidationError as e:
        refused = any(err["type"] == "extra_forbidden" for err in e.errors())
    ck.expect(refused, "refuses unknown keys",
              "accepts unknown keys, so a misspelt key in a config is silently ignored",
              "subclass diffcore.Options (model_config = ConfigDict(extra='forbid'))")
    try:
        inst = model()
    except ValidationError as e:
        missing = [".".join(map(str, err["loc"])) for err in e.errors() if err["type"] == "missing"]
        ck.fail(f"has fields without a default ({', '.join(missing) or e.errors()[0]['msg']})",
                "give every field a default: a run without this section must work offline")
        return finish(rep, raise_on_failure and report is None)
    ck.ok("every field has a default")
    try:
        model.model_validate(inst.model_dump())
        ck.ok("defaults validate")
    except ValidationError as e:
        ck.fail(f"a default does not pass its own field's validation ({_errors(e)})",
                "change the default or the constraint (pydantic does not validate defaults)")
    try:
        dumped = json.loads(json.dumps(inst.model_dump(mode="json")))
        again = model.model_validate(dumped)
        ck.expect(again == inst, "defaults survive the JSON/YAML round trip of config.yaml",
                  f"defaults change through the JSON/YAML round trip of config.yaml ({inst!r} -> {again!r})",
                  "use field types that dump to JSON and validate back to the same value")
    except (TypeError, ValueError, ValidationError) as e:
        ck.fail(f"defaults do not survive the JSON round trip of a run's config.yaml ({_describe(e)})",
                "use JSON-friendly field types (numbers, strings, lists, Path, Literal, nested Options)")
    undocumented = [n for n, f in model.model_fields.items() if not f.description]
    if undocumented:
        ck.warn(f"fields without a description: {', '.join(undocumented)} (the configuration reference and --domain-help "
                "show descriptions; use Field(..., description=...))")
    return finish(rep, raise_on_failure and report is None)


def validated(ck: _Checker, model: Any, options: Any, what: str, where: str) -> BaseModel | None:
    """``model`` checked (into ``ck``'s report, under ``where``) and ``options`` validated by
    it: None when ``model`` is not a pydantic model (reported), a :class:`_Stop` when the
    options do not validate."""
    check_options_model(model, where, report=ck.report)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    if isinstance(options, BaseModel):
        return options
    try:
        return model.model_validate(dict(options or {}))
    except ValidationError as e:
        ck.fail(f"the {what} given to the kit do not validate ({_errors(e)})", f"pass options that {model.__name__} accepts")
        raise _Stop() from None


def built(ck: _Checker, spec: Any, spec_cls: type, domain: Any, options: Any, kind: str, build_fix: str,
          domain_fix: str = "") -> tuple[Any, BaseModel]:
    """What a backbone's and an autoencoder's check start with: ``spec`` is a ``spec_cls``,
    targets ``domain``, its options validate, and ``build(options, domain)`` runs (seeded);
    (what it built, the options), or a :class:`_Stop`."""
    if not isinstance(spec, spec_cls):
        ck.fail(f"{spec!r} is not a diffcore.{spec_cls.__name__}", f"register {spec_cls.__name__}(name=..., domain=..., build=..., Options=...)")
        raise _Stop()
    ck.expect(spec.domain == getattr(domain, "name", None), "targets the domain checked",
              f"is for domain {spec.domain!r} but was checked with domain {getattr(domain, 'name', None)!r}", domain_fix)
    opts = validated(ck, spec.Options, options, "options", f"{kind} {spec.name!r} Options")
    if opts is None:
        raise _Stop()
    with ck.running("build(options, domain)", build_fix):
        torch.manual_seed(0)
        net = spec.build(opts, domain)
    return net, opts
