"""The kit (diffcore.testing) as one module per family of checks: its import paths, the plugin
checks through the platform's one loader (its messages, every failure reported, nothing left
behind, an installed plugin stood in for), and check_sampler on a SamplerSpec, on a function of
the first convention, and on broken samplers."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import diffcore.testing as dt
from diffcore import sampling, schedules
from diffcore.hookspecs import hookimpl
from diffcore.registry import _Candidate, build_registry, get_registry, registered_plugin, release
from diffcore.testing import conformance

KIT = Path(dt.__file__).parent
HERE = Path(__file__).name


# ------------------------------------------------------------------------------ layout
def test_one_module_per_family_none_over_300_lines():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in KIT.glob("*.py")}
    assert {"report.py", "options.py", "domain.py", "backbone.py", "sampler.py", "schedule.py", "plugin.py"} <= set(sizes)
    assert max(sizes.values()) <= 300, sizes


def test_public_names_and_old_paths():
    import diffcore.conformance as old
    from diffcore.testing import GaussianMixture, check_plugin, check_sampler  # the lazy exports
    from diffcore.testing.plugin import check_plugin as from_family
    from diffcore.testing.targets import GaussianMixture as target

    assert old is conformance and check_plugin is from_family is conformance.check_plugin
    assert GaussianMixture is target and check_sampler is conformance.check_sampler
    assert set(conformance.__all__) <= set(dt.__all__)
    assert all(getattr(dt, n) is getattr(conformance, n) for n in conformance.__all__)


def test_the_targets_and_the_package_stay_torch_only():
    script = ("import sys, json, diffcore.testing, diffcore.testing.targets; "
              "print(json.dumps(sorted(m for m in ('pluggy', 'pydantic') if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


# ------------------------------------------------------------- plugins, through the loader
class Misspelt:
    @hookimpl
    def diffcore_register_domain(self, register):  # the hook is diffcore_register_domains
        pass

    def diffcore_register_recipes(self, register):  # no @hookimpl: never called
        pass


class Raising:
    @hookimpl
    def diffcore_register_recipes(self, register):
        raise RuntimeError("boom in recipes")

    @hookimpl
    def diffcore_register_samplers(self, register):
        register("ddim", sampling.get("ddim"))  # a built-in's name: refused, and the hook goes on
        register("kit-ddim", sampling.get("ddim"))

    @hookimpl
    def diffcore_register_schedules(self, register):
        register("kit-cosine", schedules.cosine)


class Good:
    @hookimpl
    def diffcore_register_schedules(self, register):
        register("kit-cosine", schedules.cosine)


def _loader_status(obj, name: str) -> str:
    reg = build_registry([_Candidate(name, lambda: obj)], strict=False)
    release(reg)
    return reg.plugins[name].status


def test_a_misspelt_hook_gets_the_loaders_message():
    report = dt.check_plugin(Misspelt(), name="kit-typo", raise_on_failure=False)
    status = _loader_status(Misspelt(), "kit-typo")
    assert status.startswith("failed to load: unknown hook(s) diffcore_register_domain; valid: diffcore_register_domains")
    assert any(p.startswith(status + ". Fix: ") for p in report.problems), report
    assert any("diffcore_register_recipes is not marked with @diffcore.hookimpl" in p for p in report.problems), report


def test_a_raising_hook_is_reported_and_the_rest_still_checked():
    before = (sampling.names(), schedules.names(), sorted(get_registry().plugins))
    report = dt.check_plugin(Raising(), name="kit-raising", sampler_schedules=("vp",), raise_on_failure=False)
    problems = "\n".join(report.problems)
    # the loader's words: the first failure is what `diffcore plugins` would show
    assert _loader_status(Raising(), "kit-raising") in problems
    assert "failed in diffcore_register_recipes: RuntimeError: boom in recipes" in problems and HERE in problems
    assert "failed in diffcore_register_samplers: ValueError: sampler 'ddim' is already registered by diffcore" in problems
    assert len(report.problems) == 2, report
    # it went on: what did register was checked, under the plugin's names
    assert {"registers sampler 'kit-ddim'", "registers schedule 'kit-cosine'"} <= set(report.passed)
    assert any(p.startswith("sampler 'kit-ddim': reproduces the target") for p in report.passed), report
    assert any(p.startswith("schedule 'kit-cosine': ddim reproduces") for p in report.passed), report
    # and nothing of it stayed
    assert (sampling.names(), schedules.names(), sorted(get_registry().plugins)) == before


def test_an_installed_plugin_is_stood_in_for_by_its_name():
    with registered_plugin(Good(), "kit-installed"):
        assert dt.check_plugin(Good(), name="kit-installed").ok  # not a clash with itself
        report = dt.check_plugin(Good(), name="kit-other", raise_on_failure=False)
        assert any("schedule 'kit-cosine' is already registered by plugin 'kit-installed'" in p for p in report.problems), report
        assert schedules.factory("kit-cosine") is schedules.cosine  # the installed one is back
    assert "kit-cosine" not in schedules.names()


# ------------------------------------------------------------------------------ samplers
def legacy_ddim(den, x, ts, *, generator=None, callback=None, noise_fn=None):
    """DDIM (eta = 0) in the first convention: ``ts`` are the model times only, and the last
    step returns x0_hat."""
    n = len(ts)
    for i, t in enumerate(ts):
        x0, eps = den(x, t)
        if i + 1 < n:
            a_s, s_s = den.coef(ts[i + 1])
            x = a_s * x0 + s_s * eps
        else:
            x = x0
        if callback is not None:
            callback(i, n, x, x0)
    return x


def unseeded(den, x, ts, *, generator=None, callback=None, noise_fn=None):
    """Right on average, but with noise from the global RNG."""
    x = legacy_ddim(den, x, ts, callback=callback)
    return x + 1e-3 * torch.randn_like(x)


def wrong_shape(den, x, ts, *, generator=None, callback=None, noise_fn=None):
    return legacy_ddim(den, x, ts, callback=callback)[:, :1]


SMALL = {"schedules": ("vp",), "num": 1000}


def test_check_sampler_accepts_a_spec_and_a_legacy_function():
    rep = dt.check_sampler(sampling.get("ddim"), "ddim", **SMALL)
    assert {"sampler 'ddim': option eta: its default passes its own check", "sampler 'ddim': an unknown option is refused"} <= set(rep.passed)
    dt.check_sampler(legacy_ddim, **SMALL)
    dt.check_sampler(sampling.from_function("kit-legacy", legacy_ddim), **SMALL)
    assert not any(n.startswith("__conformance__") for n in sampling.names())


def test_check_sampler_refuses_broken_samplers():
    rep = dt.check_sampler(unseeded, raise_on_failure=False, **SMALL)
    assert any("two runs with the same generator seed differ" in p for p in rep.problems), rep
    rep = dt.check_sampler(wrong_shape, raise_on_failure=False, **SMALL)
    assert any("returned torch.Size([1000, 1]) for noise of shape (1000, 2)" in p for p in rep.problems), rep
    with pytest.raises(dt.ConformanceError, match="does not reproduce the target"):
        dt.check_sampler(lambda den, x, ts, **kw: x, "identity", **SMALL)


@dataclasses.dataclass(frozen=True)
class Lenient(sampling.SamplerSpec):
    def check_options(self, options):  # FAULT: takes any option
        return {**{k: o.default for k, o in self.options.items()}, **dict(options or {})}


def test_check_sampler_checks_declared_options():
    ddim = sampling.get("ddim")
    bad = dataclasses.replace(ddim, name="kit-bad-default", options={"eta": sampling.Option(-1.0, float, ge=0.0)})
    rep = dt.check_sampler(bad, raise_on_failure=False, **SMALL)
    assert any("option eta: its default -1.0 does not pass its own check" in p for p in rep.problems), rep
    lenient = Lenient("kit-lenient", ddim.fn, options=ddim.options)
    rep = dt.check_sampler(lenient, raise_on_failure=False, **SMALL)
    assert any("SamplingPlan.make accepts an option the sampler does not declare" in p for p in rep.problems), rep
    untaken = dataclasses.replace(ddim, name="kit-untaken", options={**ddim.options, "rho": sampling.Option(7.0)})
    rep = dt.check_sampler(untaken, raise_on_failure=False, **SMALL)
    assert any("declares option(s) rho that its function does not take" in p for p in rep.problems), rep


@pytest.mark.parametrize("name", [n for n in sampling.names() if sampling.get(n).owner is None])
def test_every_builtin_sampler_passes_the_kit_at_its_check_steps(name):
    """The public kit with its defaults: each built-in sampler reproduces the target at the steps
    its table entry names (check_steps; euler-maruyama and pc need 100, annealed Langevin 800
    levels of 20 steps: 16,001 evaluations, ~25 s here; docs/samplers.md)."""
    rep = dt.check_sampler(sampling.get(name), name, raise_on_failure=False)
    assert rep.ok, str(rep)
