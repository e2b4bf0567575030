"""Checks of a domain (:func:`check_domain`): the class and its options, ``setup()``, then its
training data (:mod:`.domain_data`), its saved state and labels, its sampling side
(:mod:`.domain_sampling`) and its editing side (:mod:`.domain_edit`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..contract.domain import Domain
from .domain_edit import check_edit
from .domain_data import check_collate, check_items, check_noise
from .domain_sampling import check_evaluate, check_sample_batches, check_val_dataset, check_write_samples
from .options import validated
from .report import Report, _Checker, _Stop, run_checks


def check_domain(
    domain_cls: type[Domain],
    options: Mapping[str, Any] | BaseModel | None = None,
    *,
    sample_options: Mapping[str, Any] | BaseModel | None = None,
    edit_inputs: Sequence[str] | None = None,
    edit_options: Mapping[str, Any] | BaseModel | None = None,
    workdir: str | Path | None = None,
    evaluate: bool = False,
    num: int = 5,
    raise_on_failure: bool = True,
    report: Report | None = None,
) -> Report:
    """Check a :class:`~diffcore.Domain` subclass with ``options`` (its ``data:`` section; use
    small ones, e.g. a few hundred examples). ``sample_options``: its ``SampleOptions`` (if
    any) for ``sample_batches``; ``edit_inputs`` (files or text of the domain's kind) and
    ``edit_options`` (its ``EditOptions``) for ``edit_batches``/``write_edits`` of a domain that
    supports editing; ``evaluate=True`` also runs :meth:`~diffcore.Domain.evaluate`
    on random "samples". The returned report's ``domain`` is the set-up instance."""

    def checks(ck: _Checker) -> None:
        opts, sopts = _set_up(ck, domain_cls, options, sample_options)
        root = Path(workdir) if workdir is not None else ck.tmpdir()
        domain = _construct(ck, domain_cls, opts, root)
        items = check_items(ck, domain)
        batch, real = check_collate(ck, domain, items)
        check_noise(ck, domain, batch, real)
        fresh = _restored(ck, domain, opts, root)
        labels = _labels(ck, fresh)
        shapes = {tuple(it["x"].shape) for it in items}
        fixed = len(shapes) == 1 and batch.get("mask") is None
        check_sample_batches(ck, fresh, num, sopts, labels, next(iter(shapes)) if fixed else None)
        check_write_samples(ck, fresh, num, sopts, root)
        check_val_dataset(ck, domain)
        check_edit(ck, fresh, edit_inputs, edit_options, root)
        if evaluate:
            check_evaluate(ck, domain, fresh, root)
        else:
            ck.skip("evaluate() (pass evaluate=True)")

    return run_checks(f"domain {getattr(domain_cls, 'name', None)!r}", checks, report, raise_on_failure)


def _set_up(ck: _Checker, cls: Any, options: Any, sample_options: Any) -> tuple[BaseModel, BaseModel | None]:
    """The class: a named, complete Domain subclass whose options models pass; the options."""
    if not (isinstance(cls, type) and issubclass(cls, Domain)):
        ck.fail(f"{cls!r} is not a subclass of diffcore.Domain", "subclass diffcore.Domain")
        raise _Stop()
    name = getattr(cls, "name", None)
    ck.expect(isinstance(name, str) and bool(name), "has a name", "has no `name`", 'set the class attribute name = "my-domain"')
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    if abstract:
        ck.fail(f"does not implement {', '.join(abstract)}", "implement every abstract method of diffcore.Domain")
        raise _Stop()
    opts = validated(ck, cls.Options, options, "options", f"domain {name!r} Options")
    sopts = None
    if cls.SampleOptions is not None:
        sopts = validated(ck, cls.SampleOptions, sample_options, "sample options", f"domain {name!r} SampleOptions")
    if opts is None:
        raise _Stop()
    return opts, sopts


def _construct(ck: _Checker, cls: type[Domain], opts: BaseModel, root: Path) -> Domain:
    """``cls(options, workdir=...)`` and ``setup()``, twice (it must be idempotent)."""
    with ck.running("constructing the domain", "keep __init__(options, workdir=...) cheap and calling super().__init__"):
        domain = cls(opts, workdir=root / "cache")
    with ck.running("setup()", "setup() must build the data from the options alone, offline"):
        domain.setup()
    with ck.running("a second setup()", "make setup() idempotent (return early when the data are built)", stop=False):
        domain.setup()
    ck.ok("setup() works")
    ck.report.domain = domain
    return domain


def _restored(ck: _Checker, domain: Domain, opts: BaseModel, root: Path) -> Domain:
    """``state_dict()`` is JSON and restores a fresh domain (how ``diffcore sample`` rebuilds a
    run); the restored domain, or ``domain`` itself if the state cannot restore one."""
    with ck.running("state_dict()"):
        state = domain.state_dict()
    try:
        text = json.dumps(state)
        ck.ok("state_dict is JSON")
    except (TypeError, ValueError) as e:
        ck.fail(f"state_dict() is not JSON-serialisable ({e})", "return plain numbers, strings, lists and dicts (e.g. tensor.tolist())")
        return domain
    with ck.running("load_state_dict(json state) on a fresh domain", "restore everything state_dict() returned"):
        fresh = type(domain)(opts, workdir=root / "cache-fresh")
        fresh.load_state_dict(json.loads(text))
        again = json.loads(json.dumps(fresh.state_dict()))
    ck.expect(again == json.loads(text), "state_dict round-trips", "state_dict() of a domain restored with load_state_dict() differs from the saved one",
              "make load_state_dict(state_dict()) restore the same state")
    return fresh


def _labels(ck: _Checker, fresh: Domain) -> Any:
    with ck.running("labels"):
        labels = fresh.labels
    if labels is not None:
        ck.expect(isinstance(labels, (list, tuple)) and len(labels) > 0 and all(isinstance(v, str) for v in labels),
                  "labels are names", f"labels is {labels!r}", "return a list of class names (index = class id), or None")
    return labels
