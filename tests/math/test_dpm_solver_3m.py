"""DPM-Solver++(3M) ("dpm-solver++3m"), beyond what every sampler is checked for
(test_samplers.py, test_sampler_conventions.py): the 10-step claim, its update against a
closed form and against diffusers' third-order multistep scheduler, float32 on cosine."""

import math

import pytest
import torch

import diffcore
from diffcore import sampling, schedules
from diffcore.testing import GaussianMixture, energy_distance

F64 = torch.float64
N = 2000
GM = GaussianMixture.default()
TARGET = GM.sample(N, torch.Generator().manual_seed(1))
NULL_MAX = float(GM.null_distances(N, repeats=20, seed=3).max())
NAME = "dpm-solver++3m"


def run(schedule, steps, prediction="eps", seed=2):
    s = schedules.get(schedule)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(N, 2, generator=g, dtype=F64)
    return diffcore.generate(GM.predictor(s, prediction), noise, s, sampler=NAME, steps=steps, prediction=prediction)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_reproduces_target_in_10_steps_on_ddpm_schedules(schedule):
    """The benchmark's claim (docs/benchmarks.md): 10 model evaluations suffice with the exact
    predictor, where DPM-Solver++(2M) does not (checked too: the same check can fail)."""
    d = float(energy_distance(run(schedule, 10), TARGET))
    assert d < NULL_MAX, f"{NAME} on {schedule} at 10 steps: {d:.4f} > {NULL_MAX:.4f}"
    s = schedules.get(schedule)
    noise = torch.randn(N, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    d2 = float(energy_distance(diffcore.generate(GM.predictor(s), noise, s, sampler="dpm-solver++", steps=10), TARGET))
    assert d2 > NULL_MAX, f"dpm-solver++ (2M) on {schedule} at 10 steps: {d2:.4f} <= {NULL_MAX:.4f}"


@pytest.mark.parametrize("prediction", ["x0", "v", "velocity"])
def test_other_predictions(prediction):
    d = float(energy_distance(run("cosine", 20, prediction), TARGET))
    assert d < NULL_MAX


def _polynomial_case(c2):
    """x0_hat = g(lambda) = c0 + c1 lambda + c2 lambda^2, independent of x: the ODE's exact
    solution is x(lambda) = (sigma / sigma_0) x_0 + sigma [G(lambda) - G(lambda_0)] with
    G = e^lambda (c0 + c1 (lambda - 1) + c2 (lambda^2 - 2 lambda + 2)). Returns the sampler's
    x at the last model time (before the jump to x0_hat) and the exact one."""
    s = schedules.get("vp")
    c0, c1 = 0.3, -0.4
    lam_of = lambda t: 0.5 * s.log_snr(torch.as_tensor(t, dtype=F64))  # noqa: E731
    model = lambda x, t: (c0 + c1 * lam_of(t) + c2 * lam_of(t) ** 2)[:, None].expand_as(x).to(x)  # noqa: E731
    G = lambda l: math.exp(l) * (c0 + c1 * (l - 1) + c2 * (l * l - 2 * l + 2))  # noqa: E731
    # two tiny warm-up steps (first and second order: O(1e-6) error), then large third-order steps
    lams = [-1.0, -1.0 + 1e-3, -1.0 + 2e-3, -0.2, 0.7, 1.5]
    ts = []
    for lam in lams:  # invert lambda(t) by bisection
        lo, hi = s.t_min, s.t_max
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if float(lam_of(mid)) > lam else (lo, mid)
        ts.append(0.5 * (lo + hi))
    den = sampling.Denoiser(model, s, "x0")
    seen = {}
    sampling.get(NAME).fn(den, torch.full((1, 1), 0.8, dtype=F64), ts + [sampling.CLEAN], callback=lambda i, n, x, x0: seen.setdefault(i, x.clone()))
    l0, l1 = float(lam_of(ts[0])), float(lam_of(ts[-1]))
    sig0, sig1 = (float(s.sigma(torch.tensor(t, dtype=F64))) for t in (ts[0], ts[-1]))
    return float(seen[len(ts) - 2]), (sig1 / sig0) * 0.8 + sig1 * (G(l1) - G(l0))


def test_steps_integrate_a_linear_data_prediction_exactly():
    """The third-order steps are exact when x0_hat is linear in lambda (a sign or scale error
    in D1 breaks this); a quadratic one is not integrated exactly (D2 is half the Taylor
    term, see the module docstring), so the check can fail."""
    got, exact = _polynomial_case(c2=0.0)
    assert abs(got - exact) < 1e-5, (got, exact)
    got, exact = _polynomial_case(c2=0.25)
    assert abs(got - exact) > 1e-3


def test_matches_diffusers_third_order_multistep():
    """Step for step, diffusers' DPMSolverMultistepScheduler(solver_order=3, "dpmsolver++"),
    at 20 steps (where its lower_order_final only touches the jump to sigma = 0, as ours)."""
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear", solver_order=3,
                                                algorithm_type="dpmsolver++")
    s = schedules.DiscreteSchedule(ref.betas.to(F64), "diffusers-linear")
    model = GM.predictor(s, "eps")
    ref.set_timesteps(20)
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(256, 2, generator=g, dtype=F64)
    x = noise.clone()
    for k in ref.timesteps:  # diffusers' 0-based step k is our step k + 1, t = (k + 1) / T
        eps = model(x, torch.full((256,), (int(k) + 1) / 1000, dtype=F64))
        x = ref.step(eps, k, x).prev_sample
    ts = [(int(k) + 1) / 1000 for k in ref.timesteps]
    ours = sampling.get(NAME).fn(sampling.Denoiser(model, s), noise.clone(), ts + [sampling.CLEAN])
    # diffusers keeps its sigmas in float32: agreement to ~1e-6, not 1e-12
    assert float((ours - x).abs().max()) < 1e-4
    far = sampling.get("dpm-solver++").fn(sampling.Denoiser(model, s), noise.clone(), ts + [sampling.CLEAN])
    assert float((far - x).abs().max()) > 1e-3  # the comparison can tell 2M from 3M


@pytest.mark.parametrize("steps", [2, 3, 5, 10, 25])
def test_cosine_near_zero_final_alpha_does_not_diverge_in_float32(steps):
    """As tests/math/test_regressions.py for the other ODE samplers: float32 on cosine stays finite
    and follows the float64 run. (At 5 steps the third-order extrapolation overshoots to
    |x| ~ 3.1 in float64 as well: few steps, not precision.)"""
    s = schedules.get("cosine")
    noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    x = diffcore.generate(GM.predictor(s), noise, s, sampler=NAME, steps=steps)
    x64 = diffcore.generate(GM.predictor(s), noise.to(F64), s, sampler=NAME, steps=steps)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert float(x.abs().max()) < 5.0
    assert float((x.to(F64) - x64).norm(dim=1).median()) < 1e-4
