"""The plugin conformance kit: does a plugin keep diffcore's contract? It says what to fix.

Call it from your plugin's own tests (it is re-exported by :mod:`diffcore.testing`)::

    import diffcore.testing
    import my_package.plugin

    def test_my_plugin_conforms():
        diffcore.testing.check_plugin(my_package.plugin, name="my-plugin",
                                      domain_options={"my-domain": {"num": 64}})

or piece by piece::

    report = check_domain(MyDomain, options={"num": 64})
    check_backbone(my_spec, report.domain)          # a set-up instance of the domain
    check_sampler(my_sampler_fn)
    check_schedule(MySchedule, options={"beta": 2.0})

Every function runs all of its checks, collects every problem, and then raises one
:class:`ConformanceError` (an ``AssertionError``, so pytest shows it as a failed test) that
lists them, each with what to change. With ``raise_on_failure=False`` it only returns the
:class:`Report` (``report.ok``, ``report.problems``, ``report.warnings``, ``report.passed``).

What is checked (with small options, a whole plugin takes seconds on a CPU):

hooks (:func:`check_plugin`)
    the plugin object registers with pluggy against diffcore's hook specs; no misspelled
    ``diffcore_*`` hook and none left without ``@diffcore.hookimpl``; every ``register(...)``
    gets the right kind of object; no name is taken by diffcore or by another installed plugin;
    each recipe names an existing domain and a backbone for that domain, and its ``defaults``
    resolve into a valid run config.
options models
    pydantic models that refuse unknown keys (a typo in a config must be an error), whose
    defaults validate (pydantic does not check defaults by itself) and survive the JSON/YAML
    round trip of a run's ``config.yaml``.
a domain (:func:`check_domain`)
    ``setup()`` works and is idempotent; training items are dicts with a floating ``x`` (and
    optional ``cond``, ``mask``); ``collate`` makes a batch dict (a ``mask`` broadcastable to
    ``x``, 0/1, when items differ in size); ``noise()`` has ``x``'s shape and dtype, is zero at
    padding, about standard normal where ``mask`` = 1, and reproducible with its generator;
    ``state_dict()`` is JSON and restores a fresh domain that can sample without ``setup()``
    (as ``diffcore sample`` does); ``sample_batches`` gives consistent ``shape``/``cond``/
    ``mask`` covering ``num``; ``write_samples`` writes files inside ``out_dir`` and returns
    their paths; optionally ``evaluate`` returns ``{name: number}``.
a backbone (:func:`check_backbone`)
    ``build(options, domain)`` gives an ``nn.Module`` whose ``forward(x_t, t, cond)`` returns
    ``x_t``'s shape and dtype, accepts ``cond=None`` (and no ``cond`` at all), depends on
    ``t`` and on ``x_t``, trains (finite loss, gradients), and is rebuilt from the domain's
    saved state so that its weights load back (safetensors) and give the same outputs.
a sampler (:func:`check_sampler`)
    the calling convention; with the exact denoiser of a Gaussian mixture
    (:class:`diffcore.testing.GaussianMixture`) it reproduces the target within sampling
    noise; it keeps ``x``'s dtype, is reproducible with its generator, draws fresh noise
    through ``noise_fn`` when given one, and calls ``callback`` once per step.
a schedule (:func:`check_schedule`)
    a :class:`diffcore.schedules.Schedule` with 0 <= t_min < t_max <= 1; alpha, sigma and
    log-SNR float64, finite and positive on [t_min, t_max]; log-SNR consistent with alpha and
    sigma and decreasing in t; derivatives matching finite differences; discrete schedules'
    betas consistent with alpha; DDIM and DDPM reproduce a Gaussian mixture through it.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import math
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from ..math import sampling as _sampling
from ..math import schedules as _schedules
from ..contract.domain import Domain
from ..contract.errors import UserError
from ..contract.hooks import PROJECT, BackboneSpec, DiffcoreHookspecs, Recipe

__all__ = [
    "ConformanceError", "Report", "check_backbone", "check_domain", "check_options_model",
    "check_plugin", "check_sampler", "check_schedule",
]

HOOKS = (
    "diffcore_register_domains", "diffcore_register_backbones", "diffcore_register_recipes",
    "diffcore_register_samplers", "diffcore_register_schedules",
)
_UNKNOWN_KEY = "__conformance_unknown_key__"


# ------------------------------------------------------------------------ report
class ConformanceError(AssertionError):
    """Raised with every problem a check found; ``.report`` holds the :class:`Report`."""

    def __init__(self, report: "Report"):
        super().__init__(str(report))
        self.report = report


@dataclass
class Report:
    """What a check found. ``problems`` break the contract (each says what to fix);
    ``warnings`` are advice; ``passed`` and ``skipped`` say what was (not) checked."""

    subject: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: the set-up domain instance (``check_domain``), for ``check_backbone``
    domain: Domain | None = None
    _keep: list[Any] = field(default_factory=list, repr=False)  # temporary folders alive with the report

    @property
    def ok(self) -> bool:
        return not self.problems

    def extend(self, other: "Report") -> None:
        self.problems += other.problems
        self.warnings += other.warnings
        self.passed += other.passed
        self.skipped += other.skipped
        self._keep += other._keep

    def raise_on_problems(self) -> "Report":
        if self.problems:
            raise ConformanceError(self)
        return self

    def __str__(self) -> str:
        head = f"diffcore conformance of {self.subject}: "
        head += "OK" if self.ok else f"{len(self.problems)} problem(s)"
        lines = [head]
        lines += [f"  - {p}" for p in self.problems]
        if self.warnings:
            lines.append("  warnings:")
            lines += [f"  * {w}" for w in self.warnings]
        tail = f"  ({len(self.passed)} check(s) passed"
        tail += f", {len(self.skipped)} skipped: {'; '.join(self.skipped)})" if self.skipped else ")"
        lines.append(tail)
        return "\n".join(lines)


class _Stop(Exception):
    """A check that later checks depend on failed (already reported)."""


def _describe(exc: BaseException) -> str:
    """``Type: message (at file:line)``, the innermost frame outside this module."""
    msg = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")
    if len(msg) > 1:
        text += " ..."
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__ and not f.filename.startswith("<")]
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


class _Checker:
    """Collects the outcome of each check under a prefix such as ``domain 'points'``."""

    def __init__(self, report: Report, prefix: str):
        self.report, self.prefix = report, prefix

    def _p(self, what: str) -> str:
        return f"{self.prefix}: {what}" if self.prefix else what

    def ok(self, what: str) -> None:
        self.report.passed.append(self._p(what))

    def fail(self, what: str, fix: str = "") -> None:
        self.report.problems.append(self._p(what) + (f". Fix: {fix}" if fix else ""))

    def warn(self, what: str) -> None:
        self.report.warnings.append(self._p(what))

    def skip(self, what: str) -> None:
        self.report.skipped.append(self._p(what))

    def expect(self, cond: bool, what: str, problem: str, fix: str = "") -> bool:
        if cond:
            self.ok(what)
        else:
            self.fail(problem, fix)
        return bool(cond)

    @contextlib.contextmanager
    def running(self, what: str, fix: str = "", stop: bool = True) -> Iterator[None]:
        """Run a step; an exception becomes a problem (and stops dependent checks if ``stop``)."""
        try:
            yield
        except _Stop:
            raise
        except Exception as e:  # noqa: BLE001 - every failure of plugin code is a finding
            self.fail(f"{what} raised {_describe(e)}", fix)
            if stop:
                raise _Stop() from e


@contextlib.contextmanager
def _seeded() -> Iterator[None]:
    """Run with the global RNG seeded (the same report every run, even for plugin code that
    draws from it) and restored afterwards (the caller's random stream is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def _finish(report: Report, raise_on_failure: bool) -> Report:
    return report.raise_on_problems() if raise_on_failure else report


def _tmpdir(report: Report) -> Path:
    d = tempfile.TemporaryDirectory(prefix="diffcore-conformance-")
    report._keep.append(d)
    return Path(d.name)


# ---------------------------------------------------------------- options models
def check_options_model(model: Any, where: str = "Options", *, report: Report | None = None,
                        raise_on_failure: bool = True) -> Report:
    """An options model (a domain's ``Options``/``SampleOptions``, a backbone's ``Options``):
    a pydantic model that refuses unknown keys, whose defaults validate and survive the JSON
    round trip of a run's config.yaml."""
    rep = report if report is not None else Report(where)
    ck = _Checker(rep, where)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        ck.fail(f"is {model!r}, not a pydantic model class", "subclass diffcore.Options and declare the fields with pydantic.Field")
        return _finish(rep, raise_on_failure and report is None)
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
        return _finish(rep, raise_on_failure and report is None)
    ck.ok("every field has a default")
    try:
        model.model_validate(inst.model_dump())
        ck.ok("defaults validate")
    except ValidationError as e:
        bad = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        ck.fail(f"a default does not pass its own field's validation ({bad})", "change the default or the constraint (pydantic does not validate defaults)")
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
        ck.warn(f"fields without a description: {', '.join(undocumented)} (the configuration reference and --domain-help show descriptions; use Field(..., description=...))")
    return _finish(rep, raise_on_failure and report is None)


def _validate_options(ck: _Checker, model: type[BaseModel], options: Any, what: str) -> BaseModel:
    if isinstance(options, BaseModel):
        return options
    try:
        return model.model_validate(dict(options or {}))
    except ValidationError as e:
        bad = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        ck.fail(f"the {what} given to the kit do not validate ({bad})", f"pass options that {model.__name__} accepts")
        raise _Stop() from None


# ------------------------------------------------------------------------ domains
def _first_dim(v: Any) -> int | None:
    return int(v.shape[0]) if isinstance(v, torch.Tensor) and v.ndim > 0 else None


def _check_cond(ck: _Checker, cond: Any, b: int, where: str) -> None:
    if cond is None:
        return
    if isinstance(cond, torch.Tensor):
        ck.expect(_first_dim(cond) == b, f"{where}: cond has the batch dimension",
                  f"{where}: cond has shape {tuple(cond.shape)}, expected a first dimension of {b} (one condition per example)",
                  "give cond the batch dimension first")
    elif isinstance(cond, Mapping):
        bad = [k for k, v in cond.items() if isinstance(v, torch.Tensor) and _first_dim(v) not in (b,)]
        if bad:
            ck.warn(f"{where}: cond tensors {', '.join(map(str, bad))} do not start with the batch dimension {b}")


def _check_mask(ck: _Checker, mask: Any, x_shape: tuple[int, ...], where: str) -> bool:
    if mask is None:
        return True
    if not isinstance(mask, torch.Tensor):
        ck.fail(f"{where}: mask is a {type(mask).__name__}, not a tensor", "make mask a float or bool tensor, 1 where an entry is real, 0 at padding")
        return False
    try:
        fits = torch.broadcast_shapes(tuple(mask.shape), x_shape) == torch.Size(x_shape)
    except RuntimeError:
        fits = False
    if not ck.expect(fits, f"{where}: mask broadcasts to x",
                     f"{where}: mask of shape {tuple(mask.shape)} does not broadcast to x's shape {x_shape}",
                     "shape the mask like x, or with size-1 dimensions where x's entries share it (e.g. [B, N, 1] for x [B, N, 3])"):
        return False
    m = mask.float()
    return ck.expect(bool(((m == 0) | (m == 1)).all()), f"{where}: mask is 0/1",
                     f"{where}: mask has values other than 0 and 1", "use 1 for real entries and 0 for padding")


def check_domain(
    domain_cls: type[Domain],
    options: Mapping[str, Any] | BaseModel | None = None,
    *,
    sample_options: Mapping[str, Any] | BaseModel | None = None,
    workdir: str | Path | None = None,
    evaluate: bool = False,
    num: int = 5,
    raise_on_failure: bool = True,
    report: Report | None = None,
) -> Report:
    """Check a :class:`~diffcore.Domain` subclass with ``options`` (its ``data:`` section; use
    small ones, e.g. a few hundred examples). ``sample_options``: its ``SampleOptions`` (if
    any) for ``sample_batches``; ``evaluate=True`` also runs :meth:`~diffcore.Domain.evaluate`
    on random "samples". The returned report's ``domain`` is the set-up instance."""
    name = getattr(domain_cls, "name", None)
    rep = report if report is not None else Report(f"domain {name!r}")
    ck = _Checker(rep, f"domain {name!r}")
    try:
        with _seeded():
            _domain_checks(ck, rep, domain_cls, options, sample_options, workdir, evaluate, num)
    except _Stop:
        pass
    return _finish(rep, raise_on_failure and report is None)


def _domain_checks(ck, rep, cls, options, sample_options, workdir, evaluate, num) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Domain)):
        ck.fail(f"{cls!r} is not a subclass of diffcore.Domain", "subclass diffcore.Domain")
        raise _Stop()
    name = getattr(cls, "name", None)
    ck.expect(isinstance(name, str) and bool(name), "has a name", "has no `name`", 'set the class attribute name = "my-domain"')
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    if abstract:
        ck.fail(f"does not implement {', '.join(abstract)}", "implement every abstract method of diffcore.Domain")
        raise _Stop()
    check_options_model(cls.Options, f"domain {name!r} Options", report=rep)
    if cls.SampleOptions is not None:
        check_options_model(cls.SampleOptions, f"domain {name!r} SampleOptions", report=rep)
    if not (isinstance(cls.Options, type) and issubclass(cls.Options, BaseModel)):
        raise _Stop()
    opts = _validate_options(ck, cls.Options, options, "options")
    sopts = None
    if cls.SampleOptions is not None and isinstance(cls.SampleOptions, type) and issubclass(cls.SampleOptions, BaseModel):
        sopts = _validate_options(ck, cls.SampleOptions, sample_options, "sample options")
    root = Path(workdir) if workdir is not None else _tmpdir(rep)

    with ck.running("constructing the domain", "keep __init__(options, workdir=...) cheap and calling super().__init__"):
        domain = cls(opts, workdir=root / "cache")
    with ck.running("setup()", "setup() must build the data from the options alone, offline"):
        domain.setup()
    with ck.running("a second setup()", "make setup() idempotent (return early when the data are built)", stop=False):
        domain.setup()
    ck.ok("setup() works")
    rep.domain = domain

    # ---- training items and collate
    with ck.running("train_dataset()"):
        ds = domain.train_dataset()
    try:
        n = len(ds)
    except TypeError:
        ck.fail("train_dataset() has no len()", "return a map-style torch Dataset (with __len__ and __getitem__)")
        raise _Stop() from None
    if not ck.expect(n > 0, "training set is not empty", "train_dataset() is empty", "check setup() and the options"):
        raise _Stop()
    idx = sorted({0, n // 3, (2 * n) // 3, n - 1})
    with ck.running("train_dataset()[i]"):
        items = [ds[i] for i in idx]
    for i, item in zip(idx, items):
        where = f"train_dataset()[{i}]"
        if not isinstance(item, Mapping):
            ck.fail(f"{where} is a {type(item).__name__}, not a dict", 'return {"x": tensor, "cond": ..., "mask": ...} per example')
            raise _Stop()
        x = item.get("x")
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            ck.fail(f"{where}['x'] is {type(x).__name__ if not isinstance(x, torch.Tensor) else x.dtype}, not a floating-point tensor",
                    "put the example, normalised, as a float tensor under 'x'")
            raise _Stop()
        ck.expect(bool(torch.isfinite(x).all()), f"{where}: x is finite", f"{where}['x'] has NaN or inf entries", "clean or normalise the data")
        if item.get("mask") is not None:
            _check_mask(ck, item["mask"], tuple(x.shape), where)
    shapes = {tuple(it["x"].shape) for it in items}

    with ck.running("collate(items)", "collate must stack the items (pad variable-size ones and add a mask)"):
        batch = domain.collate(list(items))
    if not isinstance(batch, Mapping) or not isinstance(batch.get("x"), torch.Tensor):
        ck.fail(f"collate() returned {type(batch).__name__} without a tensor 'x'", 'return a dict {"x": [B, ...], "cond": ..., "mask": ...}')
        raise _Stop()
    x = batch["x"]
    k = len(items)
    ck.expect(x.ndim >= 1 and x.shape[0] == k and x.is_floating_point(), "collate gives x [B, ...] float",
              f"collate() of {k} items gave x of shape {tuple(x.shape)} and dtype {x.dtype}", f"stack the items: x must be a float tensor [{k}, ...]")
    mask = batch.get("mask")
    if len(shapes) > 1 and mask is None:
        ck.fail(f"training items have different shapes ({sorted(shapes)[:3]}) but collate() adds no mask",
                "pad the items to a common shape in collate() and add batch['mask'] (1 real, 0 padding)")
    masked = _check_mask(ck, mask, tuple(x.shape), "collate()")
    _check_cond(ck, batch.get("cond"), k, "collate()")

    # ---- noise
    m = mask.to(x.dtype).expand_as(x) if (mask is not None and masked) else torch.ones_like(x)
    with ck.running("noise(x, batch)", "noise(like, batch, generator=None) must return a tensor shaped like `like`"):
        eps = domain.noise(x, batch, generator=torch.Generator().manual_seed(0))
        eps2 = domain.noise(x, batch, generator=torch.Generator().manual_seed(0))
        eps3 = domain.noise(x, batch, generator=torch.Generator().manual_seed(1))
        domain.noise(x, batch)  # no generator
        eps64 = domain.noise(x.double(), batch, generator=torch.Generator().manual_seed(0))
    if not isinstance(eps, torch.Tensor) or eps.shape != x.shape or eps.dtype != x.dtype or eps.device != x.device:
        got = f"shape {tuple(eps.shape)}, {eps.dtype}" if isinstance(eps, torch.Tensor) else type(eps).__name__
        ck.fail(f"noise() returned {got} for x of shape {tuple(x.shape)}, {x.dtype}", "draw noise with like's shape, dtype and device")
        raise _Stop()
    ck.ok("noise has x's shape, dtype and device")
    ck.expect(isinstance(eps64, torch.Tensor) and eps64.dtype == torch.float64, "noise follows like's dtype (float64)",
              f"noise() of a float64 `like` returned {getattr(eps64, 'dtype', type(eps64).__name__)}", "use dtype=like.dtype")
    ck.expect(bool(torch.isfinite(eps).all()), "noise is finite", "noise() has NaN or inf entries")
    ck.expect(torch.equal(eps, eps2) and not torch.equal(eps, eps3), "noise is reproducible with its generator",
              "noise() ignores its `generator` argument, so `diffcore sample --seed` cannot reproduce samples",
              "draw with torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)")
    pad = m == 0
    if bool(pad.any()):
        worst = float(eps[pad].abs().max())
        ck.expect(worst == 0.0, "noise is zero at padding",
                  f"noise() is not zero at padding (mask == 0): max |noise| there is {worst:.3g}",
                  "multiply the noise by batch['mask'] (the default Domain.noise does)")
    real = m != 0
    per = int(real.sum())
    if per > 0:
        reps = max(1, min(500, math.ceil(20000 / per)))
        with ck.running("noise(x, batch) repeated"):
            draws = torch.stack([domain.noise(x, batch, generator=torch.Generator().manual_seed(100 + r)) for r in range(reps)])
        vals = draws[:, real].double().flatten()
        N = vals.numel()
        mean, var = float(vals.mean()), float(vals.var())
        ck.expect(abs(mean) <= 5.0 / math.sqrt(N), "noise has mean 0 where mask = 1",
                  f"noise() has mean {mean:.4f} over {N} real entries (|mean| should be below {5 / math.sqrt(N):.4f})",
                  "draw standard-normal noise (mean 0)")
        hi, lo = 1.0 + 5.0 * math.sqrt(2.0 / N), 0.5
        ck.expect(lo <= var <= hi, "noise has variance about 1 where mask = 1",
                  f"noise() has variance {var:.4f} over {N} real entries; expected 1 (or a little less for a projection such as zero centre of mass)",
                  "draw standard-normal noise (variance 1), e.g. torch.randn")

    # ---- state: JSON, and a fresh domain restored from it (how `diffcore sample` rebuilds a run)
    with ck.running("state_dict()"):
        state = domain.state_dict()
    fresh = domain  # the domain the sampling checks use: a restored one if the state allows it
    try:
        text = json.dumps(state)
        ck.ok("state_dict is JSON")
    except (TypeError, ValueError) as e:
        text = None
        ck.fail(f"state_dict() is not JSON-serialisable ({e})", "return plain numbers, strings, lists and dicts (e.g. tensor.tolist())")
    if text is not None:
        with ck.running("load_state_dict(json state) on a fresh domain", "restore everything state_dict() returned"):
            fresh = cls(opts, workdir=root / "cache-fresh")
            fresh.load_state_dict(json.loads(text))
            again = json.loads(json.dumps(fresh.state_dict()))
        ck.expect(again == json.loads(text), "state_dict round-trips", "state_dict() of a domain restored with load_state_dict() differs from the saved one",
                  "make load_state_dict(state_dict()) restore the same state")

    # ---- labels
    labels = None
    with ck.running("labels"):
        labels = fresh.labels
    if labels is not None:
        ck.expect(isinstance(labels, (list, tuple)) and len(labels) > 0 and all(isinstance(v, str) for v in labels),
                  "labels are names", f"labels is {labels!r}", "return a list of class names (index = class id), or None")

    # ---- sample_batches (on the restored domain, without setup(), as `diffcore sample` does)
    fixed = len(shapes) == 1 and mask is None
    example_shape = next(iter(shapes)) if fixed else None

    def batches_of(dom: Domain, what: str, **kw) -> list[dict]:
        with ck.running(what, "sample_batches(num, batch_size, classes=None, options=None) must yield batch dicts"):
            out = list(dom.sample_batches(num, 2, **kw))
        if not out:
            ck.fail(f"{what} yielded nothing", f"yield batches covering {num} samples")
            raise _Stop()
        return out

    calls = [("sample_batches(5, 2) on a restored domain", {})]
    if sopts is not None:
        calls.append(("sample_batches(5, 2, options=SampleOptions())", {"options": sopts}))
    if labels:
        calls.append(("sample_batches(5, 2, classes=[0])", {"classes": [0]}))
    for what, kw in calls:
        got = batches_of(fresh, what, **kw)
        total = 0
        for j, b in enumerate(got):
            where = f"{what}, batch {j}"
            if not isinstance(b, Mapping) or "shape" not in b:
                ck.fail(f"{where} has no 'shape'", 'yield {"shape": (b, ...), "cond": ..., "mask": ...}')
                raise _Stop()
            try:
                shape = tuple(int(s) for s in b["shape"])
            except (TypeError, ValueError):
                ck.fail(f"{where}: shape {b['shape']!r} is not a tuple of ints", "give the full shape of x, batch dimension first")
                raise _Stop() from None
            ck.expect(1 <= shape[0] <= 2, f"{where}: batch size within batch_size", f"{where}: {shape[0]} samples in a batch of at most 2", "respect batch_size")
            if example_shape is not None:
                ck.expect(shape[1:] == example_shape, f"{where}: shape matches the training data",
                          f"{where}: sampling shape {shape[1:]} differs from the training examples' {example_shape}", "sample tensors shaped like the data")
            _check_mask(ck, b.get("mask"), shape, where)
            _check_cond(ck, b.get("cond"), shape[0], where)
            total += shape[0]
        ck.expect(total >= num and total % num == 0, f"{what}: covers num",
                  f"{what}: the batches hold {total} samples, not {num} (or {num} per requested item)", f"yield batches covering num={num} samples")
    results_batches = batches_of(fresh, "sample_batches for write_samples", **({"options": sopts} if sopts is not None else {}))

    # ---- write_samples
    out_dir = root / "samples"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    with ck.running("noise for sampling batches"):
        for b in results_batches:
            like = torch.zeros(tuple(int(s) for s in b["shape"]))
            results.append(((0.5 * fresh.noise(like, b, generator=torch.Generator().manual_seed(7))).clamp(-1, 1), b))
    with ck.running("write_samples(results, out_dir)", "write the samples as files under out_dir and return their paths"):
        paths = fresh.write_samples(results, out_dir)
    if not isinstance(paths, (list, tuple)) or not paths:
        ck.fail(f"write_samples() returned {paths!r}", "return the list of paths written (a non-empty list of Path)")
    else:
        base = out_dir.resolve()
        for p in paths:
            p = Path(p)
            inside = base == p.resolve() or base in p.resolve().parents
            ck.expect(p.is_file() and p.stat().st_size > 0 and inside, f"write_samples wrote {p.name}",
                      f"write_samples() returned {p}, which is not a non-empty file inside out_dir", "write every file under out_dir and return its path")

    # ---- val_dataset
    with ck.running("val_dataset()", stop=False):
        val = domain.val_dataset()
        if val is not None:
            item = val[0]
            ck.expect(isinstance(item, Mapping) and isinstance(item.get("x"), torch.Tensor), "val_dataset items have x",
                      "val_dataset()[0] is not a dict with a tensor 'x'", "return items like train_dataset's, or None")

    # ---- evaluate
    if evaluate:
        def sample_fn(b):
            like = torch.zeros(tuple(int(s) for s in b["shape"]))
            return fresh.noise(like, b, generator=torch.Generator().manual_seed(3)).clamp(-1, 1)

        eval_dir = root / "eval"
        eval_dir.mkdir(parents=True, exist_ok=True)
        with ck.running("evaluate(sample_fn, 8, out_dir)", "compute metrics from sample_fn(batch) and return {name: number}"):
            metrics = domain.evaluate(sample_fn, 8, eval_dir)
        good = isinstance(metrics, Mapping) and all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in metrics.items())
        ck.expect(good, "evaluate returns {name: number}", f"evaluate() returned {metrics!r}", "return a flat dict of str -> float (written to metrics.json)")
    else:
        ck.skip("evaluate() (pass evaluate=True)")


# ---------------------------------------------------------------------- backbones
def check_backbone(
    spec: BackboneSpec,
    domain: Domain,
    options: Mapping[str, Any] | BaseModel | None = None,
    *,
    raise_on_failure: bool = True,
    report: Report | None = None,
) -> Report:
    """Check a :class:`~diffcore.BackboneSpec` on a set-up ``domain`` (e.g. the ``domain`` of
    :func:`check_domain`'s report) with ``options`` (its ``backbone:`` section; keep it small)."""
    name = getattr(spec, "name", spec)
    rep = report if report is not None else Report(f"backbone {name!r}")
    ck = _Checker(rep, f"backbone {name!r}")
    try:
        with _seeded():
            _backbone_checks(ck, rep, spec, domain, options)
    except _Stop:
        pass
    return _finish(rep, raise_on_failure and report is None)


def _perturbed(net: nn.Module, seed: int = 0) -> nn.Module:
    """A copy with every parameter moved a little: zero-initialised output layers (common in
    diffusion backbones) would otherwise hide how the output depends on its inputs."""
    other = copy.deepcopy(net)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            if p.is_floating_point():
                p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))
    return other


def _backbone_checks(ck, rep, spec, domain, options) -> None:
    from ..platform import runs
    from ..math.losses import DiffusionLoss

    if not isinstance(spec, BackboneSpec):
        ck.fail(f"{spec!r} is not a diffcore.BackboneSpec", "register BackboneSpec(name=..., domain=..., build=..., Options=...)")
        raise _Stop()
    ck.expect(spec.domain == getattr(domain, "name", None), "targets the domain checked",
              f"is for domain {spec.domain!r} but was checked with domain {getattr(domain, 'name', None)!r}", "pass a domain of the backbone's kind")
    check_options_model(spec.Options, f"backbone {spec.name!r} Options", report=rep)
    if not (isinstance(spec.Options, type) and issubclass(spec.Options, BaseModel)):
        raise _Stop()
    opts = _validate_options(ck, spec.Options, options, "options")
    with ck.running("build(options, domain)", "build must return the nn.Module for this (set-up) domain"):
        torch.manual_seed(0)
        net = spec.build(opts, domain)
    if not ck.expect(isinstance(net, nn.Module), "build returns an nn.Module", f"build() returned {type(net).__name__}", "return a torch.nn.Module"):
        raise _Stop()
    with ck.running("a training batch from the domain"):
        ds = domain.train_dataset()
        k = min(4, len(ds))
        batch = domain.collate([ds[i] for i in range(k)])
    x0, cond, mask = batch["x"], batch.get("cond"), batch.get("mask")
    b = x0.shape[0]
    g = torch.Generator().manual_seed(0)
    x_t = domain.noise(x0, batch, generator=g)
    t = torch.linspace(0.1, 0.9, b, dtype=x0.dtype) if b > 1 else torch.tensor([0.5], dtype=x0.dtype)
    net.eval()
    with torch.no_grad():
        with ck.running("forward(x_t, t, cond)", "forward(x_t, t, cond=None) takes t as a float tensor [B] in [0, 1]"):
            out = net(x_t, t, cond)
        if not isinstance(out, torch.Tensor) or out.shape != x_t.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            ck.fail(f"forward(x_t, t, cond) returned {got} for x_t of shape {tuple(x_t.shape)}", "return a tensor shaped like x_t (the prediction)")
            raise _Stop()
        ck.ok("output has x_t's shape")
        ck.expect(out.dtype == x_t.dtype, "output has x_t's dtype", f"output dtype {out.dtype} differs from x_t's {x_t.dtype}", "return x_t's dtype (cast at the end)")
        ck.expect(bool(torch.isfinite(out).all()), "output is finite", "forward() returned NaN or inf", "check the network's normalisations and the time input")
        with ck.running("forward(x_t, t, None)", "cond=None means unconditional (classifier-free guidance calls it): map it to a null condition", stop=False):
            out_u = net(x_t, t, None)
            ck.expect(isinstance(out_u, torch.Tensor) and out_u.shape == x_t.shape, "accepts cond=None",
                      f"forward(x_t, t, None) returned {getattr(out_u, 'shape', type(out_u).__name__)}", "return x_t's shape for cond=None too")
        with ck.running("forward(x_t, t) without cond", "give cond a default: def forward(self, x, t, cond=None) (the loss calls model(x_t, t) for unconditional data)", stop=False):
            net(x_t, t)
            ck.ok("cond has a default")
        moved = _perturbed(net)
        moved.eval()
        base_out = moved(x_t, t, cond)
        scale = float(base_out.abs().max()) + 1e-12
        dt = 0.0
        for t2 in ((t.flip(0) if b > 1 else 1.0 - t), (t + 0.3) % 1.0):
            dt = max(dt, float((moved(x_t, t2, cond) - base_out).abs().max()))
        ck.expect(dt > 1e-6 * scale, "output depends on t", "the output does not depend on t (checked with slightly perturbed weights)",
                  "feed the time to the network, e.g. through diffcore.nn.TimeEmbedding")
        x_other = x_t + domain.noise(x0, batch, generator=torch.Generator().manual_seed(1))
        dx = float((moved(x_other, t, cond) - base_out).abs().max())
        ck.expect(dx > 1e-6 * scale, "output depends on x_t", "the output does not depend on x_t", "use x_t in forward()")

    # ---- one training step
    net.train()
    with ck.running("DiffusionLoss(...)(net, x0, cond, mask).backward()", "the backbone must train with diffcore's loss"):
        loss_fn = DiffusionLoss(_schedules.get("cosine"), prediction="eps")
        loss = loss_fn(net, x0, cond=cond, mask=mask, noise_fn=lambda like: domain.noise(like, batch), generator=torch.Generator().manual_seed(0))
        net.zero_grad()
        loss.backward()
    ck.expect(bool(torch.isfinite(loss.detach())), "loss is finite", f"the training loss is {float(loss.detach())}", "check the network's output scale")
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    grads = [p.grad for _, p in params if p.grad is not None]
    ck.expect(bool(grads) and any(bool((gr != 0).any()) for gr in grads), "gradients reach the parameters",
              "no parameter received a gradient", "make the output depend on trainable parameters")
    ck.expect(all(bool(torch.isfinite(gr).all()) for gr in grads), "gradients are finite", "some gradients are NaN or inf")
    unused = [n for n, p in params if p.grad is None]
    if unused:
        ck.warn(f"{len(unused)} parameter tensor(s) got no gradient from a training step (e.g. {', '.join(unused[:3])}): "
                "DDP training (--strategy ddp, which does not look for unused parameters) stops with 'Expected to have finished "
                "reduction in the prior iteration'; remove them, or use them in forward()")

    # ---- rebuilt from the saved state, as `diffcore sample` does: weights load and agree
    net.eval()
    tmp = _tmpdir(rep)
    with ck.running("rebuilding from the domain's saved state and loading the weights",
                    "build() must give the same architecture from a domain restored with load_state_dict() (no setup()); keep what it needs in state_dict()"):
        fresh = type(domain)(domain.options, workdir=tmp / "cache")
        fresh.load_state_dict(json.loads(json.dumps(domain.state_dict())))
        torch.manual_seed(1)
        net2 = spec.build(opts, fresh)
        runs.save_weights(net, tmp / "w.safetensors")
        runs.load_weights(net2, runs.read_weights(tmp / "w.safetensors"), tmp / "w.safetensors")
    net2.eval()
    with torch.no_grad():
        same = torch.allclose(net2(x_t, t, cond), net(x_t, t, cond), atol=1e-5, rtol=1e-4)
    ck.expect(same, "rebuilt backbone reproduces the outputs",
              "the backbone rebuilt from saved weights gives different outputs", "keep every tensor the output depends on in parameters or registered buffers")


# ----------------------------------------------------------------------- samplers
_NULL_CACHE: dict[tuple[int, int], float] = {}


def _threshold(gm, num: int) -> float:
    """Twice the 95th percentile of the energy distance between two independent target sample
    sets of size ``num``: a sampler that reproduces the target stays below it."""
    key = (num, id(gm))
    if key not in _NULL_CACHE:
        null = gm.null_distances(num, repeats=12, seed=12345)
        _NULL_CACHE[key] = 2.0 * float(torch.quantile(null, 0.95))
    return _NULL_CACHE[key]


_GM = None


def _mixture():
    global _GM
    if _GM is None:
        from .targets import GaussianMixture

        _GM = GaussianMixture.default()
    return _GM


@contextlib.contextmanager
def _as_sampler(fn: Callable, name: str | None) -> Iterator[str]:
    """A registered name for ``fn`` (its own if it is registered under it, else a temporary one)."""
    if name is not None and name in _sampling.names() and fn in (_sampling.get(name), _sampling.get(name).fn):
        yield name
        return
    alias = f"__conformance__{id(fn)}"
    _sampling.register(alias, fn, replace=True)  # a bare function, or an entry under the alias
    try:
        yield alias
    finally:
        _sampling.unregister(alias)


def check_sampler(
    fn: Callable,
    name: str | None = None,
    *,
    schedules: tuple[str, ...] = ("vp", "cosine"),
    steps: int = 50,
    num: int = 2000,
    prediction: str = "eps",
    raise_on_failure: bool = True,
    report: Report | None = None,
) -> Report:
    """Check a sampler function (the ``diffcore_register_samplers`` kind): with the exact
    denoiser of :meth:`diffcore.testing.GaussianMixture.default` on each of ``schedules``,
    ``steps`` steps must reproduce the target (energy distance below twice the 95th
    percentile of two independent target samples of size ``num``)."""
    label = name or getattr(fn, "__name__", repr(fn))
    rep = report if report is not None else Report(f"sampler {label!r}")
    ck = _Checker(rep, f"sampler {label!r}")
    try:
        with _seeded():
            _sampler_checks(ck, fn, name, schedules, steps, num, prediction)
    except _Stop:
        pass
    return _finish(rep, raise_on_failure and report is None)


def _sampler_checks(ck, fn, name, schedules, steps, num, prediction) -> None:
    from ..math.sampling import generate
    from .targets import energy_distance

    target = fn.fn if isinstance(fn, _sampling.SamplerSpec) else fn
    if not callable(target):
        ck.fail(f"{fn!r} is not callable", "register a function fn(denoiser, x, ts, *, generator=None, callback=None, noise_fn=None, **options)")
        raise _Stop()
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        params = {}
    if params:
        kinds = [p.kind for p in params.values()]
        var_kw = inspect.Parameter.VAR_KEYWORD in kinds
        missing = [k for k in ("generator", "callback", "noise_fn") if k not in params and not var_kw]
        positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required_extra = [p.name for p in list(params.values())[3:] if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        ck.expect(len(positional) >= 3 or inspect.Parameter.VAR_POSITIONAL in kinds, "takes (denoiser, x, ts)",
                  f"takes {len(positional)} positional argument(s), not (denoiser, x, ts)", "use the signature fn(denoiser, x, ts, *, generator=None, callback=None, noise_fn=None, **options)")
        ck.expect(not missing, "takes generator, callback, noise_fn", f"does not accept {', '.join(missing)}",
                  "add the keyword arguments generator=None, callback=None, noise_fn=None (diffcore passes them to every sampler)")
        ck.expect(not required_extra, "options have defaults", f"has required option(s) {', '.join(required_extra)}",
                  "make sampler options keyword-only with defaults: def fn(den, x, ts, *, generator=None, callback=None, noise_fn=None, eta=0.0)")
    gm = _mixture()
    thr = _threshold(gm, num)
    ref = gm.sample(num, torch.Generator().manual_seed(2))
    with _as_sampler(fn, name) as alias:
        for sched_name in schedules:
            sched = _schedules.get(sched_name)
            model = gm.predictor(sched, prediction)
            z = torch.randn(num, gm.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            what = f"generate(exact Gaussian-mixture denoiser, schedule {sched_name!r}, {steps} steps)"
            with ck.running(what):
                x = generate(model, z, sched, sampler=alias, steps=steps, prediction=prediction, generator=torch.Generator().manual_seed(1))
            if not isinstance(x, torch.Tensor) or x.shape != z.shape:
                ck.fail(f"{what} returned {getattr(x, 'shape', type(x).__name__)} for noise of shape {tuple(z.shape)}", "return x's shape")
                continue
            ck.expect(x.dtype == z.dtype, f"keeps float64 on {sched_name!r}", f"returned {x.dtype} for float64 input", "keep x's dtype")
            if not ck.expect(bool(torch.isfinite(x).all()), f"finite on {sched_name!r}", f"{what} returned NaN or inf", "check the update against the paper"):
                continue
            d = float(energy_distance(x, ref))
            ck.expect(d <= thr, f"reproduces the target on {sched_name!r} (energy distance {d:.4f} <= {thr:.4f})",
                      f"{what} does not reproduce the target: energy distance {d:.4f} > {thr:.4f} (twice the 95th percentile between two "
                      f"independent target samples of size {num})",
                      "check the update against the paper; compare with diffcore's 'ddim' on the same denoiser")
        sched = _schedules.get(schedules[0])
        model = gm.predictor(sched, prediction)
        small = torch.randn(64, gm.dim, generator=torch.Generator().manual_seed(5), dtype=torch.float32)

        def noise_fn_from(seed):
            g = torch.Generator().manual_seed(seed)
            return lambda like: torch.randn(like.shape, generator=g, dtype=like.dtype)

        with ck.running("generate(...) with generator and noise_fn"):
            a = generate(model, small, sched, sampler=alias, steps=8, prediction=prediction, generator=torch.Generator().manual_seed(1))
            b = generate(model, small, sched, sampler=alias, steps=8, prediction=prediction, generator=torch.Generator().manual_seed(1))
            c = generate(model, small, sched, sampler=alias, steps=8, prediction=prediction, generator=torch.Generator().manual_seed(1), noise_fn=noise_fn_from(9))
            d = generate(model, small, sched, sampler=alias, steps=8, prediction=prediction, generator=torch.Generator().manual_seed(2), noise_fn=noise_fn_from(9))
        ck.expect(torch.equal(a, b), "reproducible with its generator", "two runs with the same generator seed differ",
                  "draw random numbers only from `generator` (or noise_fn), never from the global RNG")
        ck.expect(torch.equal(c, d), "draws fresh noise through noise_fn",
                  "with noise_fn given, the result still depends on `generator`: fresh noise must come from noise_fn(x) (the domain's noise, "
                  "e.g. zero centre of mass, zero at padding)", "draw noise as noise_fn(x) if noise_fn is not None else torch.randn(..., generator=generator)")
        ck.expect(a.dtype == torch.float32, "keeps float32", f"returned {a.dtype} for float32 input", "keep x's dtype")
        calls: list[tuple[int, int]] = []
        with ck.running("generate(..., callback=...)"):
            generate(model, small, sched, sampler=alias, steps=5, prediction=prediction, callback=lambda i, n, x, x0: calls.append((i, n)))
        ck.expect([i for i, _ in calls] == list(range(5)) and all(n == 5 for _, n in calls), "calls callback(i, n, x, x0) once per step",
                  f"callback calls (i, n) were {calls[:8]}, expected (0, 5) ... (4, 5)", "call callback(i, n, x, x0_hat) after each step i of n, if it is not None")


# ---------------------------------------------------------------------- schedules
def check_schedule(
    factory: Callable[..., Any],
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    num: int = 2000,
    raise_on_failure: bool = True,
    report: Report | None = None,
) -> Report:
    """Check a schedule factory (the ``diffcore_register_schedules`` kind; a
    :class:`~diffcore.schedules.Schedule` instance is accepted too) built with ``options``."""
    label = name or getattr(factory, "__name__", repr(factory))
    rep = report if report is not None else Report(f"schedule {label!r}")
    ck = _Checker(rep, f"schedule {label!r}")
    try:
        with _seeded():
            _schedule_checks(ck, factory, dict(options or {}), num)
    except _Stop:
        pass
    return _finish(rep, raise_on_failure and report is None)


def _t(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def _schedule_checks(ck, factory, options, num) -> None:
    from ..math.sampling import generate
    from ..math.losses import DiffusionLoss
    from .targets import energy_distance

    if isinstance(factory, _schedules.Schedule):
        s = factory
    else:
        with ck.running(f"factory(**{options})", "the factory must build a schedule from keyword options"):
            s = factory(**options)
    if not isinstance(s, _schedules.Schedule):
        ck.fail(f"the factory returned {type(s).__name__}, not a diffcore.schedules.Schedule", "subclass diffcore.schedules.Schedule")
        raise _Stop()
    lo, hi = float(s.t_min), float(s.t_max)
    if not ck.expect(0.0 <= lo < hi <= 1.0, "0 <= t_min < t_max <= 1", f"t_min={lo}, t_max={hi}", "use times in [0, 1] with t_min < t_max (t = 1 is the noise end)"):
        raise _Stop()
    grid = torch.linspace(lo, hi, 513, dtype=torch.float64)
    with ck.running("alpha/sigma/log_snr on a grid of t", "alpha(t), sigma(t), log_snr(t) take a float64 tensor of any shape"):
        a, sg, lam = s.alpha(grid), s.sigma(grid), s.log_snr(grid)
        s.alpha(_t(0.5 * (lo + hi))), s.sigma(_t(0.5 * (lo + hi)))
    for nm, v in (("alpha", a), ("sigma", sg), ("log_snr", lam)):
        if not isinstance(v, torch.Tensor) or v.shape != grid.shape:
            ck.fail(f"{nm}(t) returned {getattr(v, 'shape', type(v).__name__)} for t of shape {tuple(grid.shape)}", "return a tensor shaped like t")
            raise _Stop()
        ck.expect(v.dtype == torch.float64, f"{nm} is float64", f"{nm}(t) is {v.dtype}", "compute in float64 (the samplers cast at the edge)")
        ck.expect(bool(torch.isfinite(v).all()), f"{nm} is finite on [t_min, t_max]", f"{nm}(t) is NaN or infinite on [t_min, t_max]",
                  "keep t_min and t_max inside the range where the path is not singular")
    pos = bool((a > 0).all()) and bool((sg > 0).all())
    ck.expect(pos, "alpha and sigma are positive", f"alpha or sigma is <= 0 on [t_min, t_max] (min alpha {float(a.min()):.3g}, min sigma {float(sg.min()):.3g})",
              "keep t_min/t_max where alpha > 0 and sigma > 0")
    if pos:
        ref = 2.0 * (torch.log(a) - torch.log(sg))
        err = float(((lam - ref).abs() / (1.0 + ref.abs())).max())
        ck.expect(err < 1e-6, "log_snr = 2 log(alpha / sigma)", f"log_snr(t) differs from 2 log(alpha / sigma) by up to {err:.3g} (relative)",
                  "derive log_snr from alpha and sigma (the base class does)")
    steps = lam[1:] - lam[:-1]
    ck.expect(bool((steps <= 1e-9 * (1.0 + lam[1:].abs())).all()) and float(lam[0]) > float(lam[-1]), "log-SNR decreases in t",
              f"log-SNR is not decreasing in t (it rises by up to {float(steps.max()):.3g})", "t = 0 is the data end, t = 1 the noise end: the noise must grow with t")
    # derivatives against central differences (inside a step of a discrete schedule)
    fracs = (0.1, 0.3, 0.5, 0.7, 0.9)
    pts = [lo + f * (hi - lo) for f in fracs]
    if s.discrete:
        T = s.num_steps
        pts = sorted({min(max((math.floor(p * T) + 0.5) / T, lo), hi) for p in pts})
    h = 1e-6 * (hi - lo)
    worst = []
    with ck.running("d_alpha/d_sigma", "override d_log_alpha/d_sigma analytically, or leave them to the base class's autograd"):
        for p in pts:
            for nm, f, df in (("d_alpha", s.alpha, s.d_alpha), ("d_sigma", s.sigma, s.d_sigma)):
                fd = float((f(_t(p + h)) - f(_t(p - h))) / (2 * h))
                an = float(df(_t(p)))
                if not abs(an - fd) <= 1e-3 * (abs(fd) + 1e-3):
                    worst.append(f"{nm}({p:.4g}) = {an:.6g}, finite differences give {fd:.6g}")
    ck.expect(not worst, "derivatives match finite differences", "derivatives disagree with alpha/sigma: " + "; ".join(worst[:3]),
              "fix d_log_alpha/d_sigma (the SDE samplers, the probability-flow ODE and velocity prediction use them)")
    ck.expect(math.isfinite(float(s.prior_std)) and float(s.prior_std) > 0, "prior_std is positive", f"prior_std is {s.prior_std}")
    if s.discrete:
        T = getattr(s, "num_steps", None)
        ac = getattr(s, "alphas_cumprod", None)
        if not (isinstance(T, int) and isinstance(ac, torch.Tensor) and len(ac) == T):
            ck.fail("a discrete schedule needs num_steps (int) and alphas_cumprod (a tensor of length num_steps)", "subclass diffcore.schedules.DiscreteSchedule")
        else:
            at = s.alpha(torch.arange(1, T + 1, dtype=torch.float64) / T) ** 2
            ck.expect(bool(torch.allclose(at, ac.to(torch.float64), rtol=1e-9, atol=1e-12)), "alpha(i/T)^2 = alphas_cumprod[i-1]",
                      "alpha(i/T)^2 differs from alphas_cumprod[i-1]", "step i of T sits at t = i / T")
    # the schedule through the loss and the samplers, with the exact denoiser of a mixture
    gm = _mixture()
    model = gm.predictor(s, "eps")
    with ck.running("DiffusionLoss(schedule) with the exact denoiser"):
        x0 = gm.sample(512, torch.Generator().manual_seed(4))
        loss = float(DiffusionLoss(s, prediction="eps")(model, x0, generator=torch.Generator().manual_seed(0)))
    ck.expect(math.isfinite(loss) and loss < 0.95, f"the exact denoiser's eps loss is below 1 ({loss:.3f})",
              f"the exact denoiser's eps loss is {loss:.3f}; predicting zero scores 1", "check that alpha and sigma describe x_t = alpha x0 + sigma eps")
    thr = _threshold(gm, num)
    target = gm.sample(num, torch.Generator().manual_seed(2))
    for sampler, steps_n in (("ddim", 50), ("ddpm", 100)):
        z = torch.randn(num, gm.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        if s.discrete:
            steps_n = min(steps_n, s.num_steps)
        what = f"generate(exact Gaussian-mixture denoiser, sampler {sampler!r}, {steps_n} steps)"
        with ck.running(what, stop=False):
            x = generate(model, z, s, sampler=sampler, steps=steps_n, prediction="eps", generator=torch.Generator().manual_seed(1))
            d = float(energy_distance(x, target)) if bool(torch.isfinite(x).all()) else float("inf")
            ck.expect(d <= thr, f"{sampler} reproduces a Gaussian mixture (energy distance {d:.4f} <= {thr:.4f})",
                      f"{what} does not reproduce the target: energy distance {d:.4f} > {thr:.4f}",
                      "check alpha(t) and sigma(t) (x_t = alpha x0 + sigma eps) and that the prior end t_max is close to pure noise")


# ------------------------------------------------------------------------ plugins
@dataclass
class _Collected:
    domains: list[Any] = field(default_factory=list)
    backbones: list[Any] = field(default_factory=list)
    recipes: list[Any] = field(default_factory=list)
    samplers: list[tuple[Any, Any]] = field(default_factory=list)
    schedules: list[tuple[Any, Any]] = field(default_factory=list)


def check_plugin(
    plugin: Any,
    name: str | None = None,
    *,
    domain_options: Mapping[str, Mapping[str, Any]] | None = None,
    sample_options: Mapping[str, Mapping[str, Any]] | None = None,
    backbone_options: Mapping[str, Mapping[str, Any]] | None = None,
    evaluate: bool = False,
    sampler_schedules: tuple[str, ...] = ("vp", "cosine"),
    raise_on_failure: bool = True,
) -> Report:
    """Check everything a plugin registers: ``plugin`` is the object its entry point names
    (usually the module with the ``@diffcore.hookimpl`` functions); ``name`` its entry-point
    name. ``domain_options`` / ``sample_options`` map a domain's name to small options for it,
    ``backbone_options`` a backbone's name to options (keep them small: the checks build and run
    each backbone). A backbone for a domain that another plugin provides is checked against
    that plugin's domain when it is installed (and skipped otherwise)."""
    import pluggy

    label = name or getattr(plugin, "__name__", type(plugin).__name__)
    rep = Report(f"plugin {label!r}")
    ck = _Checker(rep, "")
    domain_options, sample_options, backbone_options = dict(domain_options or {}), dict(sample_options or {}), dict(backbone_options or {})

    # ---- hooks
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(DiffcoreHookspecs)
    try:
        pm.register(plugin, name=f"__conformance__{label}")
    except Exception as e:  # PluginValidationError: a hook whose arguments do not match its spec
        ck.fail(f"registering the plugin with pluggy raised {_describe(e)}", "hooks take exactly one argument, `register`")
        return _finish(rep, raise_on_failure)
    try:
        callers = pm.get_hookcallers(plugin) or []
        unknown = sorted(c.name for c in callers if not c.has_spec())
        if unknown:
            ck.fail(f"unknown hook(s) {', '.join(unknown)}", f"use the hook names {', '.join(HOOKS)}")
        else:
            ck.ok("hook names are valid")
        marked = {c.name for c in callers}
        for attr in dir(plugin):
            if attr.startswith("diffcore_register") and attr not in marked and callable(getattr(plugin, attr, None)):
                ck.fail(f"{attr} is not marked with @diffcore.hookimpl, so diffcore never calls it", "decorate it with @diffcore.hookimpl")
        if not callers:
            ck.fail("implements no diffcore hook", "mark functions such as diffcore_register_domains(register) with @diffcore.hookimpl")
        got = _Collected()
        for hook in HOOKS:
            for impl in getattr(pm.hook, hook).get_hookimpls():
                kind = hook[len("diffcore_register_"):]
                target = getattr(got, kind)

                def register(*args, _target=target, _kind=kind):
                    _target.append(args if _kind in ("samplers", "schedules") else (args[0] if len(args) == 1 else args))

                try:
                    impl.function(**{arg: register for arg in impl.argnames})
                    ck.ok(f"{hook} runs")
                except Exception as e:  # noqa: BLE001
                    ck.fail(f"{hook} raised {_describe(e)}", "a hook only calls register(...); keep heavy imports and work out of it")
    finally:
        pm.unregister(plugin)
    _check_registrations(ck, got)

    # ---- names already taken (by diffcore, or by another installed plugin)
    from ..platform.registry import get_registry

    installed = get_registry()
    _check_clashes(ck, got, installed, name)

    # ---- each thing it provides
    own_domains: dict[str, Domain] = {}
    for cls in [c for c in got.domains if isinstance(c, type) and issubclass(c, Domain)]:
        sub = check_domain(cls, domain_options.get(cls.name), sample_options=sample_options.get(cls.name),
                           evaluate=evaluate, raise_on_failure=False)
        rep.extend(sub)
        if sub.domain is not None:
            own_domains[cls.name] = sub.domain
    for spec in [s for s in got.backbones if isinstance(s, BackboneSpec)]:
        dom = own_domains.get(spec.domain)
        if dom is None and spec.domain not in {getattr(c, "name", None) for c in got.domains} and spec.domain in installed.domains:
            sub = check_domain(installed.domains[spec.domain], domain_options.get(spec.domain), raise_on_failure=False)
            if sub.domain is None:
                rep.skipped.append(f"backbone {spec.name!r}: the installed domain {spec.domain!r} did not set up: {'; '.join(sub.problems[:1])}")
                continue
            rep._keep += sub._keep
            dom = sub.domain
        if dom is None:
            rep.skipped.append(f"backbone {spec.name!r}: domain {spec.domain!r} is not available (install the plugin that provides it)")
            continue
        rep.extend(check_backbone(spec, dom, backbone_options.get(spec.name), raise_on_failure=False))
    for sname, fn in [s for s in got.samplers if len(s) == 2]:
        rep.extend(check_sampler(fn, sname, schedules=sampler_schedules, raise_on_failure=False))
    for sname, factory in [s for s in got.schedules if len(s) == 2]:
        rep.extend(check_schedule(factory, sname, raise_on_failure=False))
    _check_recipes(ck, got, installed)
    return _finish(rep, raise_on_failure)


def _check_registrations(ck: _Checker, got: _Collected) -> None:
    for cls in got.domains:
        ck.expect(isinstance(cls, type) and issubclass(cls, Domain) and isinstance(getattr(cls, "name", None), str),
                  "registers a Domain class", f"register() in diffcore_register_domains got {cls!r}",
                  "register the Domain subclass itself (not an instance), with a `name`")
    for spec in got.backbones:
        ck.expect(isinstance(spec, BackboneSpec), "registers a BackboneSpec", f"register() in diffcore_register_backbones got {spec!r}",
                  "register(diffcore.BackboneSpec(name=..., domain=..., build=..., Options=...))")
        if isinstance(spec, BackboneSpec):
            ck.expect(callable(spec.build), f"backbone {spec.name!r} build is callable", f"backbone {spec.name!r}: build is not callable", "pass build=function(options, domain)")
    for r in got.recipes:
        ck.expect(isinstance(r, Recipe), "registers a Recipe", f"register() in diffcore_register_recipes got {r!r}",
                  "register(diffcore.Recipe(name=..., domain=..., backbone=...))")
    for kind, items in (("sampler", got.samplers), ("schedule", got.schedules)):
        for args in items:
            ok = len(args) == 2 and isinstance(args[0], str) and bool(args[0]) and callable(args[1])
            ck.expect(ok, f"registers a {kind} by name", f"register{args!r} in diffcore_register_{kind}s", f'call register("my-{kind}", function)')
    for kind, names in (("domain", [getattr(c, "name", None) for c in got.domains]), ("backbone", [getattr(s, "name", None) for s in got.backbones]),
                        ("recipe", [getattr(r, "name", None) for r in got.recipes]), ("sampler", [a[0] for a in got.samplers if a]),
                        ("schedule", [a[0] for a in got.schedules if a])):
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            ck.fail(f"registers {kind} name(s) {', '.join(map(str, dup))} more than once", "give each a distinct name")


def _check_clashes(ck: _Checker, got: _Collected, installed, name: str | None) -> None:
    def owner(kind: str, key: str) -> str | None:
        for p in installed.plugins.values():
            if p.ok and key in p.provides[kind]:
                return p.name
        return None

    tables = (
        ("domains", [(getattr(c, "name", None), c) for c in got.domains], installed.domains),
        ("backbones", [(getattr(s, "name", None), s) for s in got.backbones], installed.backbones),
        ("recipes", [(getattr(r, "name", None), r) for r in got.recipes], installed.recipes),
        ("samplers", [tuple(a) for a in got.samplers if len(a) == 2], installed.samplers),
        ("schedules", [tuple(a) for a in got.schedules if len(a) == 2], installed.schedules),
    )
    for kind, mine, theirs in tables:
        builtin = set(_sampling.names()) - set(theirs) if kind == "samplers" else set(_schedules.names()) - set(theirs) if kind == "schedules" else set()
        for key, obj in mine:
            if key in builtin:
                ck.fail(f"{kind[:-1]} {key!r} is already a diffcore built-in; the plugin would be skipped", "choose another name")
            elif key in theirs and theirs[key] != obj and (name is None or owner(kind, key) != name):
                ck.fail(f"{kind[:-1]} {key!r} is already registered by the installed plugin {owner(kind, key)!r}; installed together, one is skipped",
                        "choose another name (names are global, whatever the domain)")


@contextlib.contextmanager
def _provisional(got: _Collected) -> Iterator[None]:
    """The plugin's samplers and schedules in the core's registries while its recipes resolve."""
    added_samplers, added_schedules = [], []
    try:
        for args in got.samplers:
            if len(args) == 2 and isinstance(args[0], str) and args[0] not in _sampling.names():
                _sampling.register(args[0], args[1])
                added_samplers.append(args[0])
        for args in got.schedules:
            if len(args) == 2 and isinstance(args[0], str) and args[0] not in _schedules.names():
                _schedules.register(args[0], args[1])
                added_schedules.append(args[0])
        yield
    finally:
        for n in added_samplers:
            _sampling.unregister(n)
        for n in added_schedules:
            _schedules.unregister(n)


def _check_recipes(ck: _Checker, got: _Collected, installed) -> None:
    from ..platform.config import resolve
    from ..platform.registry import Registry

    reg = Registry(
        recipes={**installed.recipes, **{r.name: r for r in got.recipes if isinstance(r, Recipe)}},
        domains={**installed.domains, **{c.name: c for c in got.domains if isinstance(c, type) and issubclass(c, Domain)}},
        backbones={**installed.backbones, **{s.name: s for s in got.backbones if isinstance(s, BackboneSpec)}},
    )
    with _provisional(got):
        for r in [r for r in got.recipes if isinstance(r, Recipe)]:
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
