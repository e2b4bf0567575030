"""Checks of a sampler (:func:`check_sampler`): a :class:`~diffcore.sampling.SamplerSpec`, or a
bare function of the first convention (``ts`` without the clean end, wrapped by
:func:`diffcore.sampling.from_function`). With the exact denoiser of a Gaussian mixture it must
reproduce the target within sampling noise; it keeps the dtype, is reproducible with its
generator, draws fresh noise through ``noise_fn``, calls ``callback`` once per step; its
declared options have valid defaults and no other option is accepted."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..math import sampling as _sampling
from ..math import schedules as _schedules
from .report import Report, _Checker, _Stop, run_checks
from .targets import GaussianMixture, energy_distance

_SIGNATURE = "fn(denoiser, x, ts, *, generator=None, callback=None, noise_fn=None, **options)"
_UNKNOWN_OPTION = "__conformance_unknown_option__"
_NULL_CACHE: dict[tuple[int, int], float] = {}
_GM: GaussianMixture | None = None


def mixture() -> GaussianMixture:
    """The target every sampler and schedule is checked against."""
    global _GM
    if _GM is None:
        _GM = GaussianMixture.default()
    return _GM


def threshold(gm: GaussianMixture, num: int) -> float:
    """Twice the 95th percentile of the energy distance between two independent target sample
    sets of size ``num``: a sampler that reproduces the target stays below it."""
    key = (num, id(gm))
    if key not in _NULL_CACHE:
        null = gm.null_distances(num, repeats=12, seed=12345)
        _NULL_CACHE[key] = 2.0 * float(torch.quantile(null, 0.95))
    return _NULL_CACHE[key]


def check_distance(ck: _Checker, what: str, passed: str, x: torch.Tensor, ref: torch.Tensor, thr: float, fix: str) -> None:
    """``x`` (what ``what`` returned) is within ``thr`` of the target sample ``ref``."""
    d = float(energy_distance(x, ref)) if bool(torch.isfinite(x).all()) else float("inf")
    ck.expect(d <= thr, f"{passed} (energy distance {d:.4f} <= {thr:.4f})",
              f"{what} does not reproduce the target: energy distance {d:.4f} > {thr:.4f} (twice the 95th percentile between two "
              f"independent target samples of size {len(ref)})", fix)


@contextlib.contextmanager
def _as_sampler(fn: Any, name: str | None) -> Iterator[str]:
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
    fn: _sampling.SamplerSpec | Callable,
    name: str | None = None,
    *,
    schedules: tuple[str, ...] = ("vp", "cosine"),
    steps: int | None = None,
    num: int = 2000,
    prediction: str = "eps",
    raise_on_failure: bool = True,
    report: Report | None = None,
) -> Report:
    """Check a sampler (the ``diffcore_register_samplers`` kind): a ``SamplerSpec``, or a bare
    function of the first convention. With the exact denoiser of
    :meth:`diffcore.testing.GaussianMixture.default` on each of ``schedules``, ``steps`` steps
    (default: the entry's ``check_steps``, 50 unless it says more) must reproduce the target (energy distance below twice the 95th percentile of two
    independent target samples of size ``num``)."""
    label = name or getattr(fn, "name", None) or getattr(fn, "__name__", repr(fn))

    def checks(ck: _Checker) -> None:
        _check_signature(ck, fn)
        with _as_sampler(fn, name) as alias:
            n = steps if steps is not None else _sampling.get(alias).check_steps
            _check_options(ck, alias, schedules[0])
            for sched_name in schedules:
                _check_target(ck, alias, sched_name, n, num, prediction)
            _check_randomness(ck, alias, schedules[0], prediction)

    return run_checks(f"sampler {label!r}", checks, report, raise_on_failure)


def _check_signature(ck: _Checker, fn: Any) -> None:
    """The calling convention, read from the signature (a legacy function's own, through the wrapper)."""
    target = fn.fn if isinstance(fn, _sampling.SamplerSpec) else fn
    if not callable(target):
        ck.fail(f"{fn!r} is not callable", f"register a function {_SIGNATURE}")
        raise _Stop()
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    kinds = [p.kind for p in params.values()]
    var_kw = inspect.Parameter.VAR_KEYWORD in kinds
    missing = [k for k in ("generator", "callback", "noise_fn") if k not in params and not var_kw]
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required_extra = [p.name for p in list(params.values())[3:] if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    ck.expect(len(positional) >= 3 or inspect.Parameter.VAR_POSITIONAL in kinds, "takes (denoiser, x, ts)",
              f"takes {len(positional)} positional argument(s), not (denoiser, x, ts)", f"use the signature {_SIGNATURE}")
    ck.expect(not missing, "takes generator, callback, noise_fn", f"does not accept {', '.join(missing)}",
              "add the keyword arguments generator=None, callback=None, noise_fn=None (diffcore passes them to every sampler)")
    ck.expect(not required_extra, "options have defaults", f"has required option(s) {', '.join(required_extra)}",
              "make sampler options keyword-only with defaults: def fn(den, x, ts, *, generator=None, callback=None, noise_fn=None, eta=0.0)")
    declared = list(fn.options) if isinstance(fn, _sampling.SamplerSpec) else []
    untaken = [k for k in declared if k not in params and not var_kw]
    ck.expect(not untaken, "takes every declared option", f"declares option(s) {', '.join(untaken)} that its function does not take",
              "add them as keyword arguments of the function (diffcore passes every declared option), or drop them from options")


def _check_options(ck: _Checker, alias: str, schedule: str) -> None:
    """Each declared option's default passes the entry's own check; an unknown option is refused."""
    spec = _sampling.get(alias)
    if not spec.options:
        return
    for key, option in spec.options.items():
        try:
            spec.check_options({key: option.default})
            ck.ok(f"option {key}: its default passes its own check")
        except (TypeError, ValueError) as e:
            ck.fail(f"option {key}: its default {option.default!r} does not pass its own check ({e})",
                    "give the Option a default of its type and inside its range")
    try:
        _sampling.SamplingPlan.make(schedule, alias, steps=4, options={_UNKNOWN_OPTION: 1})
        refused = False
    except ValueError:
        refused = True
    ck.expect(refused, "an unknown option is refused", "SamplingPlan.make accepts an option the sampler does not declare",
              "let SamplerSpec.check_options refuse undeclared options (do not override it)")


def _check_target(ck: _Checker, alias: str, sched_name: str, steps: int, num: int, prediction: str) -> None:
    """On the exact denoiser of the mixture, float64: x's shape and dtype, finite, the target."""
    gm = mixture()
    sched = _schedules.get(sched_name)
    z = torch.randn(num, gm.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    what = f"generate(exact Gaussian-mixture denoiser, schedule {sched_name!r}, {steps} steps)"
    with ck.running(what):
        x = _sampling.generate(gm.predictor(sched, prediction), z, sched, sampler=alias, steps=steps, prediction=prediction,
                               generator=torch.Generator().manual_seed(1))
    if not isinstance(x, torch.Tensor) or x.shape != z.shape:
        ck.fail(f"{what} returned {getattr(x, 'shape', type(x).__name__)} for noise of shape {tuple(z.shape)}", "return x's shape")
        return
    ck.expect(x.dtype == z.dtype, f"keeps float64 on {sched_name!r}", f"returned {x.dtype} for float64 input", "keep x's dtype")
    if ck.expect(bool(torch.isfinite(x).all()), f"finite on {sched_name!r}", f"{what} returned NaN or inf", "check the update against the paper"):
        check_distance(ck, what, f"reproduces the target on {sched_name!r}", x, gm.sample(num, torch.Generator().manual_seed(2)),
                       threshold(gm, num), "check the update against the paper; compare with diffcore's 'ddim' on the same denoiser")


def _check_randomness(ck: _Checker, alias: str, sched_name: str, prediction: str) -> None:
    """Reproducible with its generator, fresh noise through ``noise_fn``, float32 kept, callback per step."""
    gm = mixture()
    sched = _schedules.get(sched_name)
    model = gm.predictor(sched, prediction)
    small = torch.randn(64, gm.dim, generator=torch.Generator().manual_seed(5), dtype=torch.float32)

    def run(seed: int, noise_seed: int | None = None, steps: int = 8, **kw) -> torch.Tensor:
        if noise_seed is not None:
            g = torch.Generator().manual_seed(noise_seed)
            kw["noise_fn"] = lambda like: torch.randn(like.shape, generator=g, dtype=like.dtype)
        return _sampling.generate(model, small, sched, sampler=alias, steps=steps, prediction=prediction,
                                  generator=torch.Generator().manual_seed(seed), **kw)

    with ck.running("generate(...) with generator and noise_fn"):
        a, b, c, d = run(1), run(1), run(1, noise_seed=9), run(2, noise_seed=9)
    ck.expect(torch.equal(a, b), "reproducible with its generator", "two runs with the same generator seed differ",
              "draw random numbers only from `generator` (or noise_fn), never from the global RNG")
    ck.expect(torch.equal(c, d), "draws fresh noise through noise_fn",
              "with noise_fn given, the result still depends on `generator`: fresh noise must come from noise_fn(x) (the domain's noise, "
              "e.g. zero centre of mass, zero at padding)", "draw noise as noise_fn(x) if noise_fn is not None else torch.randn(..., generator=generator)")
    ck.expect(a.dtype == torch.float32, "keeps float32", f"returned {a.dtype} for float32 input", "keep x's dtype")
    calls: list[tuple[int, int]] = []
    with ck.running("generate(..., callback=...)"):
        run(0, steps=5, callback=lambda i, n, x, x0: calls.append((i, n)))
    ck.expect([i for i, _ in calls] == list(range(5)) and all(n == 5 for _, n in calls), "calls callback(i, n, x, x0) once per step",
              f"callback calls (i, n) were {calls[:8]}, expected (0, 5) ... (4, 5)", "call callback(i, n, x, x0_hat) after each step i of n, if it is not None")
