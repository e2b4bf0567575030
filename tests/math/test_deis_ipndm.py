"""DEIS ("deis") and iPNDM ("ipndm"), beyond what every sampler is checked for
(test_samplers.py, test_sampler_conventions.py): DEIS against diffusers' DEISMultistepScheduler
step for step and against a closed form, iPNDM against exact ODE solutions, both on the
Gaussian-mixture target at 10 steps, float32 on cosine."""

import math

import pytest
import torch

import diffcore
from diffcore import sampling, schedules
from diffcore.testing import GaussianMixture, energy_distance

# diffusers' DEIS applies numpy's log to torch tensors (NumPy 2 deprecation warnings, not ours)
pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")

F64 = torch.float64
N = 2000
GM = GaussianMixture.default()
TARGET = GM.sample(N, torch.Generator().manual_seed(1))
NULL_MAX = float(GM.null_distances(N, repeats=20, seed=3).max())


def _trajectory(name, den, x, ts, **options):
    """x after each step (the callback's view)."""
    seen = []
    out = sampling.get(name).fn(den, x.clone(), ts, callback=lambda i, n, x, x0: seen.append(x.clone()), **options)
    assert torch.equal(seen[-1], out)
    return seen


def _diffusers_run(steps, order, lower_order_final=True, float64_sigmas=False):
    """diffusers' DEISMultistepScheduler on its linear schedule with the exact eps of the mixture:
    its x after each step, our time grid for the same steps, our schedule and model."""
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DEISMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear", solver_order=order,
                                           lower_order_final=lower_order_final)
    s = schedules.DiscreteSchedule(ref.betas.to(F64), "diffusers-linear")
    model = GM.predictor(s, "eps")
    ref.set_timesteps(steps)
    # diffusers' 0-based step k is our step k + 1, t = (k + 1) / T; its grid ends at its step 0
    # (sigma > 0), not at sigma = 0: our grid for the comparison ends at t = 1 / T
    ts = [(int(k) + 1) / 1000 for k in ref.timesteps] + [1 / 1000]
    if float64_sigmas:  # diffusers keeps sigma / alpha in float32; the same grid in float64
        tt = torch.tensor(ts, dtype=F64)
        ref.sigmas = s.sigma(tt) / s.alpha(tt)
    noise = torch.randn(256, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    x, theirs = noise.clone(), []
    for k in ref.timesteps:
        eps = model(x, torch.full((256,), (int(k) + 1) / 1000, dtype=F64))
        x = ref.step(eps, k, x).prev_sample
        theirs.append(x)
    return theirs, ts, sampling.Denoiser(model, s), noise


def _max_diff(ours, theirs):
    return [float((a - b).abs().max()) for a, b in zip(ours, theirs, strict=True)]


@pytest.mark.parametrize("steps", [10, 20])
def test_deis_matches_diffusers_step_for_step(steps):
    """Every step is diffusers' ``DEISMultistepScheduler(solver_order=3)`` (warm-up at orders 1
    and 2 included). Below 15 steps diffusers lowers the order of its last two steps
    (``lower_order_final``, which touches nothing at 20 steps); ours keeps the full order up to
    the jump to sigma = 0, so at 10 steps the comparison turns that off."""
    theirs, ts, den, noise = _diffusers_run(steps, 3, lower_order_final=False)
    d = _max_diff(_trajectory("deis", den, noise, ts), theirs)
    # diffusers' float32 sigmas, amplified by the third-order weights: measured 4.8e-5 at 10
    # steps, 1.3e-4 at 20 (2.5e-13 with float64 sigmas, below)
    assert max(d) < 3e-4, d
    # the comparison tells order 2 from order 3 (and our order 2 is diffusers' solver_order=2)
    far = _max_diff(_trajectory("deis", den, noise, ts, order=2), theirs)
    assert max(far) > 0.1, far
    theirs2, *_ = _diffusers_run(steps, 2, lower_order_final=False)
    assert max(_max_diff(_trajectory("deis", den, noise, ts, order=2), theirs2)) < 3e-4


@pytest.mark.parametrize("steps", [10, 20])
def test_deis_matches_diffusers_to_rounding_with_float64_sigmas(steps):
    theirs, ts, den, noise = _diffusers_run(steps, 3, lower_order_final=False, float64_sigmas=True)
    d = _max_diff(_trajectory("deis", den, noise, ts), theirs)
    assert max(d) < 1e-10, d


def test_deis_differs_from_diffusers_only_where_diffusers_lowers_the_order():
    """With diffusers' default lower_order_final at 10 steps, the first 8 steps agree and its
    last two (orders 1 and 2 there, 3 here) do not: the difference is that rule, nothing else."""
    theirs, ts, den, noise = _diffusers_run(10, 3)
    d = _max_diff(_trajectory("deis", den, noise, ts), theirs)
    assert max(d[:8]) < 3e-4 and d[8] > 1e-2, d


def _rho_grid(schedule, ts):
    return [float(schedule.sigma(torch.tensor(t, dtype=F64)) / schedule.alpha(torch.tensor(t, dtype=F64))) for t in ts]


@pytest.mark.parametrize("order", [2, 3])
def test_deis_steps_integrate_a_polynomial_in_log_rho_exactly(order):
    """eps_hat = c0 + c1 u + c2 u^2 with u = log(sigma / alpha), whatever x: the exact step is
    y_s - y_t = G(u_s) - G(u_t), G(u) = e^u (c0 + c1 (u - 1) + c2 (u^2 - 2u + 2)) (y = x / alpha).
    Each full-order step reproduces it when the polynomial's degree is below the order; order 2
    does not integrate a quadratic (so the check can fail)."""
    s = schedules.get("vp")
    c0, c1, c2 = 0.3, -0.4, (0.25 if order == 3 else 0.0)
    u_of = lambda t: torch.log(s.sigma(t.to(F64)) / s.alpha(t.to(F64)))  # noqa: E731
    model = lambda x, t: (c0 + c1 * u_of(t) + c2 * u_of(t) ** 2)[:, None].expand_as(x).to(x)  # noqa: E731
    G = lambda u: math.exp(u) * (c0 + c1 * (u - 1) + c2 * (u * u - 2 * u + 2))  # noqa: E731
    ts = sampling.grid(s, 8, "logsnr")
    x = torch.full((1, 1), 0.8, dtype=F64)
    den = sampling.Denoiser(model, s)
    xs = [x] + _trajectory("deis", den, x, ts, order=order)
    rho = _rho_grid(s, ts[:-1])
    alpha = [den.coef(t)[0] for t in ts[:-1]]
    for i in range(order - 1, len(ts) - 2):  # full-order steps, not the jump to sigma = 0
        got = float(xs[i + 1]) / alpha[i + 1] - float(xs[i]) / alpha[i]
        exact = G(math.log(rho[i + 1])) - G(math.log(rho[i]))
        assert abs(got - exact) < 1e-10 * max(1.0, abs(exact)), (i, got, exact)
    if order == 3:  # a second-order step misses the quadratic
        xs2 = [x] + _trajectory("deis", den, x, ts, order=2)
        got = float(xs2[4]) / alpha[4] - float(xs2[3]) / alpha[3]
        assert abs(got - (G(math.log(rho[4])) - G(math.log(rho[3])))) > 1e-2


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_ipndm_is_exact_for_a_constant_noise_prediction(order):
    """eps_hat = c: the ODE dy/dtau = c has y = y_0 + (tau - tau_0) c, which every Adams-Bashforth
    step reproduces (the coefficients sum to 1) on any grid, and the end is y_0 - tau_0 c."""
    c = torch.tensor([0.7, -1.2], dtype=F64)
    s = schedules.get("linear")
    den = sampling.Denoiser(lambda x, t: c.expand_as(x), s, "eps")
    ts = sampling.grid(s, 9, "logsnr")
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    xs = _trajectory("ipndm", den, x, ts, order=order)
    (a0, s0) = den.coef(ts[0])
    y0, tau0 = x / a0, s0 / a0
    for t, xi in zip(ts[1:], xs):
        a, sg = den.coef(t)
        assert torch.allclose(xi, a * (y0 + (sg / a - tau0) * c), rtol=1e-12, atol=1e-10)


class _TauDenoiser:
    """A path with alpha = 1, sigma = t (so tau = t) and eps_hat = p(tau) whatever x: the bare
    integrator, on a grid of our choosing."""

    def __init__(self, p):
        self.p = p

    def coef(self, t):
        return (1.0, 0.0) if t is None else (1.0, t)

    def __call__(self, x, t):
        eps = torch.full_like(x, self.p(t))
        return x - t * eps, eps


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_ipndm_coefficients_are_adams_bashforth_on_equal_steps(order):
    """On steps equal in tau, AB-k integrates a polynomial of degree k - 1 exactly (which fixes
    its k coefficients): eps_hat = tau^(k-1) gives y_s - y_t = (tau_s^k - tau_t^k) / k."""
    ts = [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, sampling.CLEAN]
    den = _TauDenoiser(lambda tau: tau ** (order - 1))
    x = torch.zeros(1, 1, dtype=F64)
    xs = [x] + _trajectory("ipndm", den, x, ts, order=order)
    for i in range(order - 1, len(ts) - 2):
        exact = (ts[i + 1] ** order - ts[i] ** order) / order
        assert abs(float(xs[i + 1] - xs[i]) - exact) < 1e-10 * abs(exact), (i, float(xs[i + 1] - xs[i]), exact)
    if order > 1:  # one order lower misses it
        xs = [x] + _trajectory("ipndm", den, x, ts, order=order - 1)
        exact = (ts[order] ** order - ts[order - 1] ** order) / order
        assert abs(float(xs[order] - xs[order - 1]) - exact) > 1e-3


def _gaussian_case(name, steps, spacing, **options):
    """Gaussian data N(0, S2 I): eps_hat = tau y / (S2 + tau^2), so y(tau) = y_0 sqrt((S2 + tau^2) /
    (S2 + tau_0^2)). The error at the last model time (before the jump to sigma = 0)."""
    s2 = 0.25
    s = schedules.get("vp")

    def model(x, t):
        a, sg = s.alpha(t.to(F64))[:, None], s.sigma(t.to(F64))[:, None]
        return (sg / (a * a * s2 + sg * sg) * x).to(x)

    den = sampling.Denoiser(model, s)
    ts = sampling.grid(s, steps, spacing)
    x = torch.tensor([[1.0, -0.3]], dtype=F64)
    (a0, s0), (a1, s1) = den.coef(ts[0]), den.coef(ts[-2])
    exact = a1 * (x / a0) * math.sqrt((s2 + (s1 / a1) ** 2) / (s2 + (s0 / a0) ** 2))
    return float((_trajectory(name, den, x, ts, **options)[-2] - exact).abs().max())


@pytest.mark.parametrize("spacing", ["logsnr", "linspace"])
@pytest.mark.parametrize("steps", [10, 20])
def test_ipndm_is_closer_to_the_exact_solution_than_euler(spacing, steps):
    e = _gaussian_case("ipndm", steps, spacing)
    assert e < 0.25 * _gaussian_case("euler", steps, spacing), e  # measured 0.2x at 10 steps, 0.1x to 0.005x at 20


def test_convergence_orders_on_gaussian_data():
    """On the "logsnr" grid: Euler's error halves per doubling of the steps, iPNDM's falls about
    4x (second order: equal-step coefficients on a graded grid, see ipndm.py), DEIS's 12x or
    more (third order)."""
    for name, lo, hi in [("euler", 1.8, 2.2), ("ipndm", 3.5, 5.0), ("deis", 10.0, 20.0)]:
        ratio = _gaussian_case(name, 20, "logsnr") / _gaussian_case(name, 40, "logsnr")
        assert lo < ratio < hi, (name, ratio)


def _run(name, schedule, steps, seed=2, dtype=F64, **options):
    s = schedules.get(schedule)
    noise = torch.randn(N, 2, generator=torch.Generator().manual_seed(seed), dtype=F64).to(dtype)
    return diffcore.generate(GM.predictor(s), noise, s, sampler=name, steps=steps, **options)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("name", ["deis", "ipndm"])
def test_reproduces_target_in_10_steps(name, schedule):
    """10 model evaluations on the default ("logsnr") grid suffice with the exact predictor
    (measured 0.0019 / 0.0021 for deis, 0.0020 / 0.0024 for ipndm; null max ~0.0044), where
    DDIM's 10 steps do not (the same check can fail)."""
    d = float(energy_distance(_run(name, schedule, 10), TARGET))
    assert d < NULL_MAX, f"{name} on {schedule} at 10 steps: {d:.4f} > {NULL_MAX:.4f}"
    d1 = float(energy_distance(_run(name, schedule, 10, order=1), TARGET))
    assert d1 > NULL_MAX, f"{name} at order 1 (DDIM) on {schedule}: {d1:.4f} <= {NULL_MAX:.4f}"


def test_table_entries():
    deis, ipndm = sampling.get("deis"), sampling.get("ipndm")
    assert deis.default_spacing == ipndm.default_spacing == "logsnr"
    assert deis.options["order"].default == 3 and ipndm.options["order"].default == 4
    assert deis.evaluations(7) == ipndm.evaluations(7) == 7


@pytest.mark.parametrize("steps", [2, 3, 5, 10, 25])
@pytest.mark.parametrize("name", ["deis", "ipndm"])
def test_cosine_in_float32_stays_finite_and_follows_float64(name, steps):
    """As tests/test_regressions.py for the other ODE samplers: float32 on cosine (alpha ~ 0.005
    at the first model time) stays finite and follows the float64 run."""
    x, x64 = _run(name, "cosine", steps, seed=0, dtype=torch.float32), _run(name, "cosine", steps, seed=0)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert float((x.to(F64) - x64).norm(dim=1).median()) < 1e-4
