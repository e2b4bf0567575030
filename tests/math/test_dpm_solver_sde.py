"""DPM-Solver++(2M) SDE and (3M) SDE ("dpm-solver++2m-sde", "dpm-solver++3m-sde"), beyond what
every sampler is checked for (test_samplers.py: the target at 50 steps on every schedule;
test_sampler_conventions.py): step for step against diffusers and against k-diffusion's
formulas given the same noise, eta = 0 is the ODE solver, and the Brownian noise refines
one path as the grid is refined."""

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
NAMES = ["dpm-solver++2m-sde", "dpm-solver++3m-sde"]


def _setup(steps=20, n=256):
    s = schedules.get("linear")
    model = GM.predictor(s, "eps")
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, 2, generator=g, dtype=F64)
    zs = [torch.randn(n, 2, generator=g, dtype=F64) for _ in range(steps)]
    return s, model, x, zs


def _ours(name, den, x, ts, zs, eta=1.0):
    """Our sampler fed the noises ``zs`` in order (noise_type="iid" through noise_fn)."""
    it = iter(zs)
    return sampling.get(name).fn(den, x.clone(), list(ts) + [sampling.CLEAN], noise_fn=lambda like: next(it),
                                 eta=eta, noise_type="iid")


def _k_diffusion(order, den, x, ts, zs, eta=1.0):
    """k-diffusion's sample_dpmpp_2m_sde (solver_type="midpoint") and sample_dpmpp_3m_sde,
    written out in its variables: x_k = x / alpha, sigma_k = sigma / alpha, t = -log sigma_k."""
    coef = [den.coef(t) for t in ts]
    sig = [s / a for a, s in coef] + [0.0]
    xk, it = x / coef[0][0], iter(zs)
    d1 = d2 = h1 = h2 = None
    for i in range(len(ts)):
        a = coef[i][0]
        denoised, _ = den(a * xk, ts[i])
        if sig[i + 1] == 0:
            xk = denoised
        else:
            h = math.log(sig[i]) - math.log(sig[i + 1])
            h_eta = h * (eta + 1)
            if order == 2:  # sample_dpmpp_2m_sde
                xk = sig[i + 1] / sig[i] * math.exp(-eta * h) * xk + (-math.expm1(-h - eta * h)) * denoised
                if d1 is not None:
                    xk = xk + 0.5 * (-math.expm1(-h - eta * h)) * (h1 / h) ** -1 * (denoised - d1)
            else:  # sample_dpmpp_3m_sde
                xk = math.exp(-h_eta) * xk + (-math.expm1(-h_eta)) * denoised
                if h2 is not None:
                    r0, r1 = h1 / h, h2 / h
                    d1_0, d1_1 = (denoised - d1) / r0, (d1 - d2) / r1
                    dd1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                    dd2 = (d1_0 - d1_1) / (r0 + r1)
                    phi_2 = math.expm1(-h_eta) / h_eta + 1
                    phi_3 = phi_2 / h_eta - 0.5
                    xk = xk + phi_2 * dd1 - phi_3 * dd2
                elif h1 is not None:
                    xk = xk + (math.expm1(-h_eta) / h_eta + 1) * (denoised - d1) / (h1 / h)
            if eta:
                xk = xk + next(it) * sig[i + 1] * math.sqrt(-math.expm1(-2 * h * eta))
            h1, h2 = h, h1
        d1, d2 = denoised, d1
    return xk


@pytest.mark.parametrize("eta", [1.0, 0.5])
@pytest.mark.parametrize("order", [2, 3])
def test_matches_k_diffusion_formulas(order, eta):
    """In float64, to rounding: the update (VP form here, VE form there) and the use of eta."""
    s, model, x, zs = _setup()
    ts = [float(t) for t in sampling.grid(s, 20, "logsnr")[:-1]]
    den = sampling.Denoiser(model, s)
    ours = _ours(NAMES[order - 2], den, x, ts, zs, eta)
    ref = _k_diffusion(order, den, x, ts, zs, eta)
    assert float((ours - ref).abs().max()) < 1e-9


def _diffusers(order, steps, x, zs, model, solver_type="midpoint"):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear", solver_order=order,
                                                algorithm_type="sde-dpmsolver++", solver_type=solver_type)
    ref.set_timesteps(steps)
    x = x.clone()
    for k, z in zip(ref.timesteps, zs):  # diffusers' 0-based step k is our step k + 1, t = (k + 1) / T
        eps = model(x, torch.full((len(x),), (int(k) + 1) / 1000, dtype=F64))
        x = ref.step(eps, k, x, variance_noise=z).prev_sample
    return x, ref, [(int(k) + 1) / 1000 for k in ref.timesteps]


def _diffusers_case():
    """diffusers, our schedule made from its betas, the exact predictor on it, start and noises."""
    diffusers = pytest.importorskip("diffusers")
    s0 = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear")
    s = schedules.DiscreteSchedule(s0.betas.to(F64), "diffusers-linear")
    _, _, x, zs = _setup()
    return diffusers, s, GM.predictor(s, "eps"), x, zs


def test_2m_sde_matches_diffusers_step_for_step():
    """diffusers' DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++", solver_order=2)
    given the same noise at each step, 20 steps (its lower_order_final only touches the jump
    to sigma = 0, as ours)."""
    diffusers, s, model, x, zs = _diffusers_case()
    ref, _, ts = _diffusers(2, 20, x, zs, model)
    ours = _ours("dpm-solver++2m-sde", sampling.Denoiser(model, s), x, ts, zs)
    # diffusers keeps its sigmas and the noise in float32: 7e-6 measured, not 1e-12
    assert float((ours - ref).abs().max()) < 1e-4
    ode = sampling.get("dpm-solver++").fn(sampling.Denoiser(model, s), x.clone(), ts + [sampling.CLEAN])
    assert float((ode - ref).abs().max()) > 1e-2  # the noise counts: the comparison can fail


def test_3m_sde_follows_k_diffusion_not_diffusers_third_order():
    """diffusers' third-order sde-dpmsolver++ step weighs D2 by -alpha_s (X + 1/2) where the
    expansion (and k-diffusion) give -alpha_s (X - 1/2): ours agrees with k-diffusion
    (test_matches_k_diffusion_formulas) and differs from diffusers' (by 2.0 at 20 steps);
    with diffusers' D2 coefficient patched the two agree to float32 rounding."""
    diffusers, s, model, x, zs = _diffusers_case()
    ref, _, ts = _diffusers(3, 20, x, zs, model)
    den = sampling.Denoiser(model, s)
    ours = _ours("dpm-solver++3m-sde", den, x, ts, zs)
    assert float((ours - ref).abs().max()) > 0.1  # 2.0 measured: not rounding
    # diffusers with k-diffusion's second step (solver_type="heun": + alpha_s phi2 D1_0) and its
    # third-order D2 weight corrected by + alpha_s D2 is ours, step for step
    cls = diffusers.DPMSolverMultistepScheduler
    orig = cls.multistep_dpm_solver_third_order_update

    def fixed(self, model_output_list, *args, sample=None, noise=None, **kw):
        out = orig(self, model_output_list, sample=sample, noise=noise)
        sig = self.sigmas[self.step_index + 1], self.sigmas[self.step_index], self.sigmas[self.step_index - 1], self.sigmas[self.step_index - 2]
        (a_t, s_t), (a0, s0_), (a1, s1), (a2, s2) = (self._sigma_to_alpha_sigma_t(v) for v in sig)
        lt, l0, l1, l2 = (torch.log(a) - torch.log(b) for a, b in ((a_t, s_t), (a0, s0_), (a1, s1), (a2, s2)))
        h, r0, r1 = lt - l0, (l0 - l1) / (lt - l0), (l1 - l2) / (lt - l0)
        m0, m1, m2 = model_output_list[-1], model_output_list[-2], model_output_list[-3]
        d2 = ((m0 - m1) / r0 - (m1 - m2) / r1) / (r0 + r1)
        return out + a_t * d2

    try:
        cls.multistep_dpm_solver_third_order_update = fixed
        patched, _, _ = _diffusers(3, 20, x, zs, model, "heun")
    finally:
        cls.multistep_dpm_solver_third_order_update = orig
    assert float((patched - ours).abs().max()) < 1e-3  # float32 there: 9e-5 measured


def test_eta_zero_is_the_ode_solver():
    """eta = 0: no noise, and the 2M SDE update is DPM-Solver++(2M)'s exactly."""
    s, model, x, _ = _setup()
    ode = diffcore.generate(model, x, s, sampler="dpm-solver++", steps=15)
    sde = diffcore.generate(model, x, s, sampler="dpm-solver++2m-sde", steps=15, eta=0.0)
    assert float((ode - sde).abs().max()) < 1e-10


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("options", [{"noise_type": "iid"}, {"eta": 0.5}])
def test_options_reproduce_target(name, options):
    """The i.i.d. noise and a partial eta reach the target too (the default: test_samplers.py)."""
    s = schedules.get("cosine")
    g = torch.Generator().manual_seed(2)
    x = diffcore.generate(GM.predictor(s), torch.randn(N, 2, generator=g, dtype=F64), s, sampler=name, steps=50,
                          generator=g, **options)
    d = float(energy_distance(x, TARGET))
    assert d < NULL_MAX, f"{name} {options}: {d:.4f} > {NULL_MAX:.4f}"


@pytest.mark.parametrize("name", NAMES)
def test_brownian_noise_refines_one_path(name):
    """The same seed at 20, 40 and 80 steps: with the Brownian tree the samples converge (the
    finer grid refines the same path; measured median distance 0.064 then 0.028), with i.i.d.
    noise they are unrelated draws (~1.5 apart, the target's spread)."""
    s = schedules.get("cosine")

    def at(steps, noise_type):
        g = torch.Generator().manual_seed(2)
        x = torch.randn(N, 2, generator=g, dtype=F64)
        return diffcore.generate(GM.predictor(s), x, s, sampler=name, steps=steps, generator=g, noise_type=noise_type)

    gap = {k: float((at(n, k) - at(2 * n, k)).norm(dim=1).median()) for k in ("brownian", "iid") for n in (20,)}
    finer = float((at(40, "brownian") - at(80, "brownian")).norm(dim=1).median())
    assert gap["brownian"] < 0.1 * gap["iid"]
    assert finer < 0.7 * gap["brownian"]  # and closer as the grid is refined


def test_options_are_checked():
    with pytest.raises(ValueError, match="noise_type must be one of brownian, iid"):
        sampling.get("dpm-solver++2m-sde").check_options({"noise_type": "gaussian"})
    with pytest.raises(ValueError, match="eta"):
        sampling.get("dpm-solver++3m-sde").check_options({"eta": -1})
