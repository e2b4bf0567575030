"""UniPC ("unipc": B(h) = e^h - 1, "unipc-bh1": B(h) = h), beyond what every sampler is checked
for (test_samplers.py, test_sampler_conventions.py): diffusers' UniPCMultistepScheduler step
for step, the Gaussian-mixture target in 10 steps, exactness on polynomial data predictions,
float32 on cosine."""

import math

import pytest
import torch

import diffcore
from diffcore import sampling, schedules
from diffcore.math.sampling import unipc
from diffcore.testing import GaussianMixture, energy_distance

F64 = torch.float64
N = 2000
GM = GaussianMixture.default()
TARGET = GM.sample(N, torch.Generator().manual_seed(1))
NULL_MAX = float(GM.null_distances(N, repeats=20, seed=3).max())
NAME = {"bh2": "unipc", "bh1": "unipc-bh1"}
# every configuration the table offers: (B(h), order, lower_order_final); lower_order_final only
# changes order 3 (for orders 1 and 2 the only lowered step is the one to sigma = 0, first order anyway)
CONFIGS = [(v, o, lof) for v in ("bh1", "bh2") for o in (1, 2, 3) for lof in ((True, False) if o == 3 else (True,))]


def run(name, schedule, steps, prediction="eps", seed=2, **options):
    s = schedules.get(schedule)
    noise = torch.randn(N, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return diffcore.generate(GM.predictor(s, prediction), noise, s, sampler=name, steps=steps, prediction=prediction, **options)


def test_table_entries():
    for name, order, p in [("unipc", 3, 2), ("unipc-bh1", 2, 1)]:
        spec = sampling.get(name)
        assert spec.default_spacing == "logsnr" and not spec.stochastic
        assert spec.options["order"].default == p and spec.order == p + 1  # UniPC-p is of order p + 1
        assert spec.options["lower_order_final"].default is True  # diffusers' default
        assert spec.evaluations(10) == spec.evaluations(10, {"order": 3}) == 10  # the corrector costs no evaluation
        assert "Zhao et al. 2023" in spec.reference


# ------------------------------------------------------------------------------ diffusers


def _diffusers(variant, order, lof, steps, noise, model):
    """diffusers' states after each step (its prev_sample: the predictor's output, which the
    model sees next), and the model times (diffusers' 0-based step k is our step k + 1, t = (k + 1) / T)."""
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.UniPCMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear", solver_order=order,
                                            solver_type=variant, lower_order_final=lof, predict_x0=True)
    ref.set_timesteps(steps)
    # Without lower_order_final, diffusers' step to sigma = 0 is of order >= 2 and divides by
    # r_k = 0 (inf/NaN, or a singular solve at order 3): stop before it.
    times = ref.timesteps if lof else ref.timesteps[:-1]
    x, states = noise.clone(), []
    for k in times:
        x = ref.step(model(x, torch.full((len(x),), (int(k) + 1) / 1000, dtype=F64)), k, x).prev_sample
        states.append(x)
    return states, [(int(k) + 1) / 1000 for k in ref.timesteps]


def _ours(variant, order, lof, ts, noise, model, s):
    states = []
    out = sampling.get(NAME[variant]).fn(sampling.Denoiser(model, s), noise.clone(), ts + [sampling.CLEAN], order=order,
                                         lower_order_final=lof, callback=lambda i, n, x, x0: states.append(x))
    assert torch.equal(out, states[-1])
    return states


def _setup():
    diffusers = pytest.importorskip("diffusers")
    betas = diffusers.UniPCMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear").betas
    s = schedules.DiscreteSchedule(betas.to(F64), "diffusers-linear")
    noise = torch.randn(256, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    return s, GM.predictor(s, "eps"), noise


@pytest.mark.parametrize("steps", [10, 20])
@pytest.mark.parametrize("variant,order,lof", CONFIGS)
def test_matches_diffusers_step_for_step(variant, order, lof, steps):
    """Every state, UniP-p then UniC-p at each model time, against diffusers' UniPCMultistepScheduler
    (predict_x0=True, solver_type, solver_order, lower_order_final) on the linear schedule. Its
    sigmas are float32: agreement to ~1e-6, not 1e-12. The end differs where diffusers' is broken:
    "bh1" returns NaN on the step to sigma = 0 (B = -inf times a zero residual), ours x0_hat."""
    s, model, noise = _setup()
    theirs, ts = _diffusers(variant, order, lof, steps, noise, model)
    ours = _ours(variant, order, lof, ts, noise, model, s)
    assert len(ours) == steps and len(theirs) >= steps - 1
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if i == steps - 1 and not torch.isfinite(b).all():
            assert variant == "bh1" and torch.isfinite(a).all()  # the end, where diffusers' bh1 gives NaN
            continue
        assert float((a - b).abs().max()) < 1e-4, f"step {i}: {float((a - b).abs().max()):.2e}"
    if variant == "bh2" and lof:  # the end as well: x0_hat at the last model time
        assert len(theirs) == steps and float((ours[-1] - theirs[-1]).abs().max()) < 1e-4


def test_the_comparison_tells_the_configurations_apart():
    """At 10 steps each configuration agrees with diffusers' own (< 1e-4) and is > 1e-3 from every
    other one, so the test above pins the variant, the order and lower_order_final. One pair is
    close by construction: order 3 without lower_order_final, "bh1" vs "bh2". B(h) cancels from
    every solved coefficient (test_b_h_only_enters_the_simplified_coefficients), so the two differ
    only in the warm-up's UniC-1 and UniP-2 (their coefficient 1/2): 1.7e-4 here."""
    s, model, noise = _setup()
    theirs, ours = {}, {}
    for c in CONFIGS:
        states, ts = _diffusers(*c, 10, noise, model)
        theirs[c] = torch.stack(states[:9])  # the model times (diffusers' bh1 end is NaN)
        ours[c] = torch.stack(_ours(*c, ts, noise, model, s)[:9])
    close = {("bh1", 3, False), ("bh2", 3, False)}
    for a in CONFIGS:
        for b in CONFIGS:
            d = float((ours[a] - theirs[b]).abs().max())
            if a == b:
                assert d < 1e-4, (a, d)
            elif {a, b} == close:
                assert 1e-4 < d < 1e-3, (a, b, d)
            else:
                assert d > 1e-3, (a, b, d)


def test_b_h_only_enters_the_simplified_coefficients():
    """a_s B sum c_k D_k with c solving R c = g / B: B cancels, "bh1" and "bh2" take the same step
    wherever the coefficients are solved (UniP-3, UniC-2, UniC-3) and differ only where the paper
    fixes them to 1/2 (UniP-2, UniC-1)."""
    for h, rs in [(0.7, [-1.3, 1.0]), (2.5, [-0.8, -1.9]), (0.05, [-1.0, -2.1, 1.0])]:
        b1, c1 = unipc._coefficients(h, rs, bh1=True)
        b2, c2 = unipc._coefficients(h, rs, bh1=False)
        assert b1 == -h and b2 == math.expm1(-h)
        assert all(abs(b1 * x - b2 * y) < 1e-12 * max(1.0, abs(b2 * y)) for x, y in zip(c1, c2))
    x, m0, m1 = torch.zeros(1), torch.zeros(1), torch.ones(1)
    s1 = unipc._step(x, 0.5, 0.8, 1.2, m0, [(-1.0, m1)], bh1=True, simplified=True)
    s2 = unipc._step(x, 0.5, 0.8, 1.2, m0, [(-1.0, m1)], bh1=False, simplified=True)
    assert abs(float(s1 - s2)) > 0.1


# ------------------------------------------------------------------------------ the target


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_reproduces_target_in_10_steps_on_ddpm_schedules(schedule):
    """UniPC-1 with B(h) = h ("unipc-bh1"'s default) is within the null spread at 10 model
    evaluations (0.0033 linear, 0.0039 cosine); "unipc" (bh2, order 2) gets there by 12 steps
    (0.0043 / 0.0058 at 10). The check can fail: "unipc-bh1" with order 2, diffusers' default
    solver_order, is off at 10 steps (0.026 / 0.039: the 1/2 of UniP-2 with B = h overshoots
    at large h)."""
    d = float(energy_distance(run("unipc-bh1", schedule, 10), TARGET))
    assert d < NULL_MAX, f"unipc-bh1 on {schedule} at 10 steps: {d:.4f} > {NULL_MAX:.4f}"
    d = float(energy_distance(run("unipc", schedule, 12), TARGET))
    assert d < NULL_MAX, f"unipc on {schedule} at 12 steps: {d:.4f} > {NULL_MAX:.4f}"
    d = float(energy_distance(run("unipc-bh1", schedule, 10, order=2), TARGET))
    assert d > 3 * NULL_MAX, f"unipc-bh1 order 2 on {schedule} at 10 steps: {d:.4f} <= 3 x {NULL_MAX:.4f}"


@pytest.mark.parametrize("name", ["unipc", "unipc-bh1"])
@pytest.mark.parametrize("prediction", ["x0", "v", "velocity"])
def test_other_predictions(name, prediction):
    d = float(energy_distance(run(name, "cosine", 20, prediction), TARGET))
    assert d < NULL_MAX


# ------------------------------------------------------------------------------ exactness


def _polynomial_case(name, coeffs, **options):
    """x0_hat = g(lambda) = sum_j coeffs[j] lambda^j, independent of x: the ODE's exact solution is
    x(lambda) = (sigma / sigma_0) x_0 + sigma [G(lambda) - G(lambda_0)] with G' = e^lambda g. Returns
    the sampler's state after each step between model times and the exact one (as
    test_dpm_solver_3m.py's, on the same grid: two tiny warm-up steps, then large ones)."""
    s = schedules.get("vp")
    lam_of = lambda t: 0.5 * s.log_snr(torch.as_tensor(t, dtype=F64))  # noqa: E731
    g = lambda lam: sum(c * lam ** j for j, c in enumerate(coeffs))  # noqa: E731
    model = lambda x, t: g(lam_of(t))[:, None].expand_as(x).to(x)  # noqa: E731

    def G(lam):  # an antiderivative of e^lam lam^j is e^lam sum_k (-1)^k j! / (j - k)! lam^(j - k)
        return math.exp(lam) * sum(c * sum((-1) ** k * math.perm(j, k) * lam ** (j - k) for k in range(j + 1))
                                   for j, c in enumerate(coeffs))

    lams = [-1.0, -1.0 + 1e-3, -1.0 + 2e-3, -0.2, 0.7, 1.5]
    ts = []
    for lam in lams:  # invert lambda(t) by bisection
        lo, hi = s.t_min, s.t_max
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if float(lam_of(mid)) > lam else (lo, mid)
        ts.append(0.5 * (lo + hi))
    seen = []
    sampling.get(name).fn(sampling.Denoiser(model, s, "x0"), torch.full((1, 1), 0.8, dtype=F64), ts + [sampling.CLEAN],
                          callback=lambda i, n, x, x0: seen.append(float(x)), **options)
    sig = lambda t: float(s.sigma(torch.tensor(t, dtype=F64)))  # noqa: E731
    l0 = float(lam_of(ts[0]))
    exact = [(sig(t) / sig(ts[0])) * 0.8 + sig(t) * (G(float(lam_of(t))) - G(l0)) for t in ts[1:]]
    return [abs(a - b) for a, b in zip(seen, exact)]  # the states at ts[1:], the end (x0_hat) left out


LINEAR, QUADRATIC, CUBIC = (0.3, -0.4), (0.3, -0.4, 0.25), (0.3, -0.4, 0.25, 0.1)


@pytest.mark.parametrize("name", ["unipc", "unipc-bh1"])
def test_third_order_steps_integrate_linear_and_quadratic_data_predictions_exactly(name):
    """Order 3 runs UniP-1, UniP-2 (warm-up; tiny steps here), then UniP-3, whose coefficients are
    solved: exact when x0_hat is a quadratic in lambda, provided the corrected start is (UniC-2 and
    UniC-3 are exact up to cubics). With lower_order_final the last step between model times is
    UniP-2, whose fixed 1/2 is not exact even for a linear x0_hat; without, every large step is
    UniP-3. A cubic breaks UniP-3 (the check can fail)."""
    for coeffs in (LINEAR, QUADRATIC):
        err = _polynomial_case(name, coeffs, order=3, lower_order_final=False)
        assert max(err[2:]) < 1e-9 and max(err) < 1e-6, err  # the warm-up: O(h^2) with h = 1e-3
        err = _polynomial_case(name, coeffs, order=3)
        assert max(err[2:4]) < 1e-9 and err[4] > 1e-3, err
    assert max(_polynomial_case(name, CUBIC, order=3, lower_order_final=False)[2:]) > 1e-3


@pytest.mark.parametrize("name", ["unipc", "unipc-bh1"])
@pytest.mark.parametrize("order", [1, 2])
def test_orders_1_and_2_are_not_exact_for_a_linear_data_prediction(name, order):
    """UniP-1 is DDIM and UniP-2's coefficient is fixed to 1/2 (exact only as h -> 0): the order
    does not allow it (nor does UniC-1's 1/2), which is why the test above uses order 3."""
    assert max(_polynomial_case(name, LINEAR, order=order)[2:]) > 1e-3


# ------------------------------------------------------------------------------ float32


@pytest.mark.parametrize("name", ["unipc", "unipc-bh1"])
@pytest.mark.parametrize("steps", [1, 2, 3, 5, 10, 25])
def test_cosine_near_zero_final_alpha_does_not_diverge_in_float32(name, steps):
    """As tests/test_regressions.py for the other ODE samplers: float32 on cosine stays finite
    and follows the float64 run, down to 1 step (x0_hat at the first model time) and 2 or 3
    (fewer model times than order 3 needs: the warm-up caps it)."""
    s = schedules.get("cosine")
    noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    for order in (1, 2, 3):
        x = diffcore.generate(GM.predictor(s), noise, s, sampler=name, steps=steps, order=order)
        x64 = diffcore.generate(GM.predictor(s), noise.to(F64), s, sampler=name, steps=steps, order=order)
        assert x.dtype == torch.float32 and torch.isfinite(x).all()
        assert float(x.abs().max()) < 5.0
        assert float((x.to(F64) - x64).norm(dim=1).median()) < 1e-4
