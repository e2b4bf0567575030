"""The sampler table: one entry per sampler, its metadata declared, not discovered.

A sampler is a plain function (k-diffusion's convention)

    fn(denoiser, x, ts, *, generator=None, callback=None, noise_fn=None, **options) -> x0

``denoiser`` (:class:`diffcore.math.denoiser.Denoiser`) gives ``denoiser(x, t) -> (x0_hat,
eps_hat)`` whatever the network predicts, and ``denoiser.coef(t) -> (alpha, sigma)`` as floats.
``x`` is the start, already scaled to the prior at ``ts[0]``; ``ts`` is the time grid of
:mod:`.grid`: the model times, noisiest first, then the clean end ``CLEAN`` (``coef(CLEAN) ==
(1.0, 0.0)``), so a sampler walks the pairs ``zip(ts, ts[1:])`` and its last step lands on the
data like any other step. ``noise_fn(like)`` draws fresh noise for stochastic samplers (the
domain's noise, e.g. zero centre of mass; :func:`noise_source`); ``callback(i, n, x, x0_hat)``
is called after each of the ``n = len(ts) - 1`` steps.

The entry (:class:`SamplerSpec`) says what the CLI, the config validation, the docs and the
tests need to know: the default spacing of the grid, the options with their types, defaults
and ranges (:class:`Option`: ``eta`` belongs to the entries it parametrises, DDIM's and the
DPM-Solver++ SDEs', not to every sampler), the order and
the model evaluations a run of N steps costs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .grid import CLEAN, SPACINGS


@dataclass(frozen=True)
class Option:
    """One sampler option: its type (float, int or bool), default and bounds."""

    default: Any
    type: type = float
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    nullable: bool = False  # None is a valid value (e.g. "choose for me")
    description: str = ""
    choices: tuple | None = None  # the values allowed (type=str: a word, e.g. noise_type: brownian or iid)

    def check(self, name: str, value: Any) -> Any:
        """``value`` as this option's type, or ValueError naming the option and the range.
        ``type=object`` (a first-convention function's option of unknown type) is not checked."""
        if (value is None and self.nullable) or self.type is object:
            return value
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"option {name} must be {self.range()}, got {value!r}")
            return value
        if isinstance(value, str):
            value = _parse(value)
        kind = self.type.__name__
        if self.type is bool:
            if not isinstance(value, bool):
                raise ValueError(f"option {name} must be true or false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.type is int and not float(value).is_integer()):
            raise ValueError(f"option {name} must be {'an integer' if self.type is int else 'a number'}, got {value!r}")
        value = self.type(value)
        if not math.isfinite(value):
            raise ValueError(f"option {name} must be finite, got {value!r}")
        bad = (
            (self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
        )
        if bad:
            raise ValueError(f"option {name} must be {self.range()}, got {value!r}")
        return value if kind != "float" else float(value)

    def range(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        parts = [f">= {self.ge}" if self.ge is not None else "", f"> {self.gt}" if self.gt is not None else "",
                 f"<= {self.le}" if self.le is not None else ""]
        return " and ".join(p for p in parts if p) or "any value"


def _parse(text: str) -> Any:
    """A command-line value: true/false/null, an int, a float, else the string itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler's entry in the table."""

    name: str
    fn: Callable[..., torch.Tensor]
    default_spacing: str = "linspace"
    options: Mapping[str, Option] = field(default_factory=dict)
    order: int | None = None  # order of accuracy of the deterministic part (None: not stated)
    evals: str = "N"  # model evaluations for N model times, as a formula of N and the options
    nfe: Callable[[int, Mapping[str, Any]], int] | None = None  # the same, computed
    stochastic: bool = False
    min_steps: int = 1  # fewer steps leave the data's scale on some paths (measured: docs/samplers.md); the CLI refuses them
    reference: str = ""  # the paper and equation it implements
    owner: str | None = None  # None: built in; else the plugin that registered it
    stepwise: bool = True  # run on a one-step grid (t, s) it returns x_s: editing's RePaint resampling needs it
    check_steps: int = 50  # the steps the conformance kit checks it with on the exact target (diffcore.testing.check_sampler)

    def __post_init__(self):
        if self.default_spacing not in SPACINGS:
            raise ValueError(f"sampler {self.name!r}: default_spacing must be one of {', '.join(SPACINGS)}")

    def check_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """The options, checked against the entry, with the defaults of those not given."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(
                f"sampler {self.name!r} does not take option(s) {', '.join(unknown)}; "
                f"its options: {', '.join(self.options) or 'none'}"
            )
        return {k: o.check(k, options[k]) if k in options else o.default for k, o in self.options.items()}

    def spacing(self) -> str:
        """The default spacing; a first-convention function's ``default_spacing`` attribute is
        read when it is used (it may be set after registering, as the first convention did)."""
        legacy = getattr(self.fn, "__wrapped__", None)
        return getattr(legacy, "default_spacing", None) or self.default_spacing

    def __call__(self, den, x, ts, **kw) -> torch.Tensor:
        """Run the sampler; ``ts`` of the first convention (model times only) get the clean end."""
        ts = list(ts)
        if not ts or ts[-1] is not CLEAN:
            ts.append(CLEAN)
        return self.fn(den, x, ts, **kw)

    def evaluations(self, steps: int, options: Mapping[str, Any] | None = None) -> int | None:
        """Model evaluations of a run with ``steps`` model times (None: not declared)."""
        return self.nfe(steps, self.check_options(options)) if self.nfe is not None else None

    def steps_within(self, nfe: int, options: Mapping[str, Any] | None = None, cap: int | None = None) -> int | None:
        """The most steps (at most ``cap``) whose evaluations fit in ``nfe``; a sampler that
        declares none counts one per step. None: not even one step fits."""
        fits = [n for n in range(1, min(nfe, cap or nfe) + 1) if (self.evaluations(n, options) or n) <= nfe]
        return fits[-1] if fits else None


_TABLE: dict[str, SamplerSpec] = {}


def register(spec: SamplerSpec | str, fn: Callable | None = None, *, replace: bool = False):
    """Add a sampler to the table (plugins: the ``diffcore_register_samplers`` hook).
    ``register(name, fn)`` (also as a decorator, ``@register(name)``) is the first convention's
    form: the bare function is wrapped by :func:`from_function`."""
    if isinstance(spec, str) and isinstance(fn, SamplerSpec):  # an entry under another name
        spec, fn = dataclasses.replace(fn, name=spec), None
    if isinstance(spec, str):
        if fn is None:
            return lambda f: register(spec, f, replace=replace).fn.__wrapped__
        spec = from_function(spec, fn)
    if not isinstance(spec, SamplerSpec):
        raise TypeError(f"register() expects a SamplerSpec, got {spec!r}")
    old = _TABLE.get(spec.name)
    same = old is not None and getattr(old.fn, "__wrapped__", old.fn) is getattr(spec.fn, "__wrapped__", spec.fn)
    if old is not None and not replace and old != spec and not same:
        raise ValueError(f"a sampler named {spec.name!r} is already registered")
    _TABLE[spec.name] = spec
    return spec


def sampler(name: str, **meta) -> Callable[[Callable], Callable]:
    """Decorator: register the function as sampler ``name`` with the metadata ``meta`` (the
    fields of :class:`SamplerSpec`)."""

    def deco(fn):
        register(SamplerSpec(name, fn, **meta))
        return fn

    return deco


def unregister(name: str) -> None:
    _TABLE.pop(name, None)


def names() -> list[str]:
    return sorted(_TABLE)


def specs() -> list[SamplerSpec]:
    return [_TABLE[n] for n in names()]


def get(name: str) -> SamplerSpec:
    if name not in _TABLE:
        raise ValueError(f"unknown sampler {name!r}; valid names: {', '.join(names())}")
    return _TABLE[name]


_COMMON = ("generator", "callback", "noise_fn")


def from_function(name: str, fn: Callable, *, owner: str | None = None) -> SamplerSpec:
    """The entry of a sampler written to the first convention (before the table existed): a
    bare function whose ``ts`` are the model times only and whose last step returns x0_hat,
    with ``fn.default_spacing`` and keyword-only options. It is wrapped at the edge (it gets
    ``ts`` without the clean end); its options are read from its signature, their ranges are
    the function's own business. New samplers should register a :class:`SamplerSpec`."""
    import inspect

    params = inspect.signature(fn).parameters.values()
    kinds = {"float": float, "int": int, "bool": bool, float: float, int: int, bool: bool}

    def kind(p):  # the annotation where it names a number or a flag, else unchecked
        ann = p.annotation if not isinstance(p.annotation, str) else p.annotation.split("|")[0].strip()
        return kinds.get(ann, bool if isinstance(p.default, bool) else object)

    options = {
        p.name: Option(p.default, kind(p), nullable=True)
        for p in params if p.kind is p.KEYWORD_ONLY and p.name not in _COMMON and p.default is not p.empty
    }

    def model_times_only(den, x, ts, **kw):
        return fn(den, x, list(ts[:-1]), **kw)

    model_times_only.__doc__ = fn.__doc__
    model_times_only.__wrapped__ = fn
    return SamplerSpec(name, model_times_only, getattr(fn, "default_spacing", None) or "linspace", options, owner=owner,
                       evals="?", reference=(fn.__doc__ or "").strip().split("\n")[0], stepwise=False)


def randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def noise_source(noise_fn, generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """The noise function a stochastic sampler calls: the domain's, or i.i.d. normal."""
    return noise_fn if noise_fn is not None else (lambda like: randn_like(like, generator))
