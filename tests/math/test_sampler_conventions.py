"""The conventions every sampler in the table keeps, parametrised over the table itself, so
registering a sampler tests it: it ends on sigma = 0, keeps the dtype, is reproducible with
its generator, calls the callback once per step, costs the model evaluations its entry
declares, and its options are checked against the entry (defaults accepted, out of range and
unknown refused). Exactness on the Gaussian-mixture target: tests/math/test_samplers.py."""

from __future__ import annotations

import math

import pytest
import torch

import diffcore
from diffcore import sampling, schedules
from diffcore.testing import GaussianMixture

F64 = torch.float64
GM = GaussianMixture.default()
NAMES = sampling.names()


def _run(name, schedule="linear", steps=6, dtype=F64, seed=0, **kw):
    s = schedules.get(schedule)
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(11), dtype=dtype)
    return diffcore.generate(GM.predictor(s), noise, s, sampler=name, steps=steps,
                             generator=torch.Generator().manual_seed(seed), **kw)


def test_the_table_holds_the_built_in_samplers():
    builtin = {s.name for s in sampling.specs() if s.owner is None}
    assert {"ddpm", "ddim", "euler", "heun", "dpm-solver++", "dpm-solver++3m", "euler-maruyama", "pc", "langevin"} <= builtin
    assert sampling.get("ddim").options["eta"].default == 0.0  # eta belongs to the entries it parametrises
    assert all("eta" not in s.options for s in sampling.specs() if s.name not in ("ddim", "dpm-solver++2m-sde", "dpm-solver++3m-sde"))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("schedule", ["linear", "ve", "flow"])
def test_ends_on_sigma_zero(name, schedule):
    """A constant x0 prediction c comes back as c, and the result is the last x0_hat seen by the
    callback: the last step goes to sigma = 0, with no leftover noise."""
    c = torch.tensor([0.25, -0.5], dtype=F64)
    seen = []
    x = diffcore.generate(lambda x, t: c.expand_as(x), torch.randn(16, 2, dtype=F64), schedule, sampler=name, steps=5,
                          prediction="x0", generator=torch.Generator().manual_seed(0),
                          callback=lambda i, n, x, x0: seen.append(x0))
    assert torch.allclose(x, c.expand_as(x), atol=1e-10)
    assert torch.allclose(x, seen[-1], atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_keeps_dtype_and_is_reproducible_with_its_generator(name):
    a, b = _run(name, seed=1), _run(name, seed=1)
    assert a.dtype == F64 and torch.equal(a, b)
    assert _run(name, dtype=torch.float32).dtype == torch.float32
    if sampling.get(name).stochastic:
        assert not torch.equal(a, _run(name, seed=2))  # the noise really comes from the generator


@pytest.mark.parametrize("name", NAMES)
def test_callback_once_per_step_and_declared_evaluations(name):
    s = schedules.get("vp")
    calls, evals = [], [0]
    model = GM.predictor(s)

    def counted(x, t):
        evals[0] += 1
        return model(x, t)

    diffcore.generate(counted, torch.randn(8, 2, dtype=F64), s, sampler=name, steps=7,
                      callback=lambda i, n, x, x0: calls.append((i, n)))
    assert calls == [(i, 7) for i in range(7)]
    declared = sampling.get(name).evaluations(7)
    if declared is not None:
        assert evals[0] == declared, f"{name}: {evals[0]} model evaluations, its entry says {declared}"


def _bad_values(option):
    if option.type is bool:
        return [2, "maybe"]
    bad = ["abc", float("nan")]
    if option.type is int:
        bad.append(1.5)
    if option.ge is not None:
        bad.append(option.ge - 1)
    if option.gt is not None:
        bad.append(option.gt)
    if option.le is not None:
        bad.append(option.le + 1)
    return bad


@pytest.mark.parametrize("name", NAMES)
def test_options_are_checked_against_the_entry(name):
    spec = sampling.get(name)
    plan = sampling.SamplingPlan.make("linear", name, 5)
    assert dict(plan.options) == {k: o.default for k, o in spec.options.items()}
    with pytest.raises(ValueError, match="does not take option"):
        sampling.SamplingPlan.make("linear", name, 5, options={"no_such_option": 1})
    for key, option in spec.options.items():
        sampling.SamplingPlan.make("linear", name, 5, options={key: option.default})
        for bad in _bad_values(option):
            with pytest.raises(ValueError, match=f"option {key}"):
                sampling.SamplingPlan.make("linear", name, 5, options={key: bad})


def test_a_plan_is_resolved_once_and_executed_as_is():
    plan = sampling.SamplingPlan.make("cosine", "dpm-solver++", 8, options=None)
    assert plan.spacing == "logsnr" and plan.steps == 8 and len(plan.ts) == 9 and plan.ts[-1] is sampling.CLEAN
    assert plan.ts[:-1] == tuple(sampling.timesteps(schedules.get("cosine"), 8, "logsnr"))
    noise = torch.randn(32, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    model = GM.predictor(plan.schedule)
    assert torch.equal(diffcore.generate(model, noise, plan),
                       diffcore.generate(model, noise, "cosine", sampler="dpm-solver++", steps=8))
    ddpm = sampling.SamplingPlan.make("linear", "ddpm")
    assert ddpm.steps == 1000 and sampling.SamplingPlan.make("linear", "ddim").steps == sampling.DEFAULT_STEPS
    with pytest.raises(ValueError, match="steps"):
        sampling.SamplingPlan.make("linear", "ddim", 0)


def test_a_first_convention_function_still_registers():
    """A bare function (model times only, ``default_spacing`` attribute, keyword options) is
    wrapped at the edge: the example plugin's sampler keeps working unchanged."""

    def mine(den, x, ts, *, generator=None, callback=None, noise_fn=None, scale: float = 1.0):
        for t in ts:
            assert t is not None  # never sees the clean end
            x0, _ = den(x, t)
        return scale * x0

    mine.default_spacing = "logsnr"
    spec = sampling.register("test-bare", mine)
    try:
        assert spec.default_spacing == "logsnr" and set(spec.options) == {"scale"}
        out = diffcore.generate(lambda x, t: torch.ones_like(x), torch.randn(3, 2), "vp", sampler="test-bare", steps=4,
                                prediction="x0", scale=2.0)
        assert torch.allclose(out, torch.full((3, 2), 2.0))
        with pytest.raises(ValueError, match="option scale"):
            sampling.SamplingPlan.make("vp", "test-bare", 4, options={"scale": "big"})
    finally:
        sampling.unregister("test-bare")


def test_custom_times_and_karras_spacing():
    s = schedules.get("linear")
    plan = sampling.SamplingPlan.make(s, "dpm-solver++", times=[0.999, 0.6, 0.2, 0.01])
    assert plan.spacing == "custom" and plan.steps == 4 and plan.ts == (0.999, 0.6, 0.2, 0.01, sampling.CLEAN)
    for bad, what in (([0.5, 0.7], "decrease strictly"), ([1.5, 0.2], "outside"), ([float("nan")], "outside"), ([], "at least one")):
        with pytest.raises(ValueError, match=what):
            sampling.SamplingPlan.make(s, "ddim", times=bad)
    with pytest.raises(ValueError, match="not both"):
        sampling.SamplingPlan.make(s, "ddim", 10, "logsnr", times=[0.9, 0.1])
    # karras: EDM's rho = 7 levels, denser at low noise than log-SNR spacing
    for name in ("linear", "vp", "ve", "flow"):
        sch = schedules.get(name)
        k, l = sampling.timesteps(sch, 12, "karras"), sampling.timesteps(sch, 12, "logsnr")
        assert k[0] == l[0] and all(a > b for a, b in zip(k, k[1:]))
        tau = [float((sch.sigma(torch.tensor(t, dtype=F64)) / sch.alpha(torch.tensor(t, dtype=F64)))) for t in k]
        r = [v ** (1 / 7) for v in tau]
        steps_r = [a - b for a, b in zip(r, r[1:])]
        if not sch.discrete:  # evenly spaced in tau^(1/rho), as EDM's eq. 5
            assert max(steps_r) - min(steps_r) < 1e-3 * (r[0] - r[-1]), name


def test_shifted_spacing_is_sd3s_time_shift():
    """'shifted' moves the linspace times to sigma / alpha three times larger: on the flow path
    exactly SD3's t -> 3 t / (1 + 2 t) (Esser et al. 2024), clamped to the first time; on every
    path the log-SNR drops by 2 log 3 wherever the shift stays inside the schedule."""
    flow = schedules.get("flow")
    lin, sh = sampling.timesteps(flow, 9, "linspace"), sampling.timesteps(flow, 9, "shifted")
    assert sh[0] == lin[0] and all(a > b for a, b in zip(sh, sh[1:]))
    for t, u in zip(lin[1:], sh[1:]):
        assert abs(u - 3 * t / (1 + 2 * t)) < 1e-4
    for name in ("vp", "cosine"):
        s = schedules.get(name)
        a, b = sampling.timesteps(s, 12, "linspace"), sampling.timesteps(s, 12, "shifted")
        lam = lambda t: float(s.log_snr(torch.tensor(t, dtype=F64)))  # noqa: E731
        inner = [(t, u) for t, u in zip(a, b) if u < a[0]]
        assert len(inner) >= 8
        tol = 1e-3 if not s.discrete else 0.1  # a discrete schedule rounds to its steps
        assert all(abs(lam(u) - (lam(t) - 2 * math.log(3))) < tol * max(1, abs(lam(t))) for t, u in inner), name


def test_first_convention_compatibility():
    """What plugins and notebooks written before the table do keeps working: a sampler called
    with model times only, the same function registered twice, ``default_spacing`` set after
    registering, options typed by their annotation, ``_bcast``."""
    s = schedules.get("linear")
    model = GM.predictor(s)
    noise = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    ts = sampling.timesteps(s, 10)
    den = sampling.Denoiser(model, s)
    old = sampling.get("ddim")(den, noise.clone(), ts)  # the old call: model times only
    assert torch.equal(old, diffcore.generate(model, noise, s, sampler="ddim", steps=10))

    def late(den, x, ts, *, generator=None, callback=None, noise_fn=None, w: float = 0, how: str = "mid"):
        for t in ts:
            x0, _ = den(x, t)
        return x0 * (1 + w)

    sampling.register("test-late", late)
    try:
        sampling.register("test-late", late)  # a re-run notebook cell
        late.default_spacing = "logsnr"  # set after registering, as the first convention did
        plan = sampling.SamplingPlan.make(s, "test-late", 5, options={"w": 0.5, "how": "end"})
        assert plan.spacing == "logsnr" and plan.options == {"w": 0.5, "how": "end"}
        with pytest.raises(ValueError, match="option w"):
            sampling.SamplingPlan.make(s, "test-late", 5, options={"w": "x"})
    finally:
        sampling.unregister("test-late")
    assert diffcore.forward._bcast is diffcore.forward.bcast


def test_a_plan_refuses_extra_arguments():
    plan = sampling.SamplingPlan.make("linear", "ddim", 5)
    with pytest.raises(ValueError, match="already fixes steps"):
        diffcore.generate(GM.predictor(plan.schedule), torch.randn(4, 2, dtype=F64), plan, steps=10)


def test_auto_picks_the_recommended_row_within_the_budget():
    """sampler='auto' reads the recommendation table (data written by benchmarks/frontier.py
    tune): the row of the largest budget that fits, as many steps as the budget pays for."""
    from diffcore.math.sampling.recommended import RECOMMENDED

    for name in ("linear", "cosine", "flow", "vp"):  # vp: the pooled family rows
        s = schedules.get(name)
        rows = RECOMMENDED.get(name) or RECOMMENDED[sampling.family(s)]
        assert [r[0] for r in rows] == sorted(r[0] for r in rows)
        for budget in (4, 5, 8, 10, 12, 50, 200):
            plan = sampling.SamplingPlan.make(s, "auto", budget)
            row = [r for r in rows if r[0] <= budget][-1]
            spacing = row[2] if s.discrete or row[2] not in ("leading", "leading-multistep") else sampling.get(row[1]).default_spacing
            if row[2] == "tuned":  # the row's own grid, read at this step count
                assert (plan.sampler, plan.spacing) == (row[1], "tuned")
                assert plan.ts[:-1] == tuple(sampling.tuned_times(s, plan.steps, row[5]))
            else:
                assert (plan.sampler, plan.spacing) == (row[1], spacing)  # the leading grids are discrete-only
            assert {k: plan.options[k] for k in row[3]} == row[3]  # the row's options reach the sampler
            assert sampling.get(plan.sampler).evaluations(plan.steps, plan.options) <= budget
            assert "auto" in plan.notes[0]
    ve = sampling.SamplingPlan.make("ve", "auto", 10)  # a family the table has no rows for
    assert (ve.sampler, ve.spacing) == sampling.recommend.__globals__["FALLBACK"]
    with pytest.raises(ValueError, match="chooses the sampler"):
        sampling.SamplingPlan.make("linear", "auto", 10, options={"eta": 1})
    x = diffcore.generate(GM.predictor(schedules.get("cosine")), torch.randn(2000, 2, generator=torch.Generator().manual_seed(4), dtype=F64),
                          "cosine", sampler="auto", steps=10)
    target = GM.sample(2000, torch.Generator().manual_seed(1))
    null_max = float(GM.null_distances(2000, repeats=20, seed=3).max())
    assert float(diffcore.testing.energy_distance(x, target)) < null_max  # 10 evaluations suffice here


def test_tuned_grids_read_log_snr_fractions():
    """A tuned grid is log-SNR fractions between the noisiest time (0) and t_min (1): even
    fractions are the ``logsnr`` spacing on every path; another step count reads the same curve;
    a discrete schedule gets distinct integer steps; bad fractions are refused."""
    for name in ("linear", "cosine", "flow"):
        s = schedules.get(name)
        for steps in (2, 5, 8):
            even = [k / (steps - 1) for k in range(steps)]
            assert sampling.tuned_times(s, steps, even) == pytest.approx(sampling.timesteps(s, steps, "logsnr"), abs=1e-9)
    s = schedules.get("flow")
    lam = lambda ts: s.log_snr(torch.tensor(ts, dtype=F64))  # noqa: E731
    f = [0.0, 0.2, 0.7, 0.9]  # read at 7 steps: the curve's points, and midpoints between them
    ts7 = sampling.tuned_times(s, 7, f)
    lo, hi = float(lam(sampling.start_time(s))), float(lam(s.t_min))
    assert ((lam(ts7) - lo) / (hi - lo)).tolist() == pytest.approx([0.0, 0.1, 0.2, 0.45, 0.7, 0.8, 0.9], abs=1e-4)
    lin = schedules.get("linear")
    ts = sampling.tuned_times(lin, 12, [0.0, 0.99, 0.995, 1.0])  # crowded at the clean end: still distinct steps
    idx = [round(t * 1000) for t in ts]
    assert ts == [i / 1000 for i in idx] and all(a > b for a, b in zip(idx, idx[1:])) and idx[0] == 1000
    for bad in ([0.1, 0.5, 1.0], [0.0, 0.5, 0.5], [0.0, 0.5, 1.2], [0.0]):
        with pytest.raises(ValueError, match="fractions"):
            sampling.tuned_times(s, 4, bad)


def test_auto_follows_a_tuned_row(monkeypatch):
    """A recommendation row with spacing "tuned" runs its own grid: the plan's times are the
    grid's (at the budget's step count), the note says so, and the samples are the sampler's
    on those times given explicitly."""
    import importlib

    rec = importlib.import_module("diffcore.math.sampling.recommend")  # the module (its function shares the name)
    s = schedules.get("cosine")
    rows = {"cosine": [(4, "ipndm", "tuned", {"order": 3}, 0.0, [0.0, 0.3, 0.55, 0.8, 0.97])]}
    monkeypatch.setattr(rec, "RECOMMENDED", rows)
    plan = sampling.SamplingPlan.make(s, "auto", 5)
    assert (plan.sampler, plan.spacing, plan.steps) == ("ipndm", "tuned", 5)
    assert plan.ts[:-1] == tuple(sampling.tuned_times(s, 5, rows["cosine"][0][5])) and plan.ts[-1] is sampling.CLEAN
    assert "tuned" in plan.notes[0] and "for 5 model evaluations on 'cosine'" in plan.notes[0] and "read at 5 steps" in plan.notes[0]
    assert plan.times_record() == {"times": list(plan.ts[:-1])}  # what records keep of it
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    model = GM.predictor(s)
    by_times = sampling.SamplingPlan.make(s, "ipndm", options={"order": 3}, times=plan.ts[:-1]).run(model, noise)
    assert torch.equal(plan.run(model, noise), by_times)
    assert sampling.SamplingPlan.make(s, "auto", 9).steps == 9  # a larger budget reads the same curve at 9 steps


def test_auto_on_continuous_paths_and_large_budgets():
    vp = sampling.SamplingPlan.make("vp", "auto", 4)  # rows tuned on discrete paths: no leading grid here
    assert vp.spacing not in ("leading", "leading-multistep")
    flow = sampling.timesteps(schedules.get("flow"), 5, "trailing")  # diffusers' flow grid: 1, 0.8, ..., 0.2 (from t_max)
    hi, lo = sampling.start_time(schedules.get("flow")), schedules.get("flow").t_min
    assert flow == pytest.approx([hi + (lo - hi) * k / 5 for k in range(5)]) and flow[-1] > 0.19
    big = sampling.SamplingPlan.make("cosine", "auto", 2001)  # capped at the usable steps, never refused
    assert big.steps <= 996
