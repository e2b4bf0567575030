"""Schedules: agreement with the papers' formulas and with diffusers, precision, bad input."""

import math

import pytest
import torch

from diffcore import schedules

F64 = torch.float64


@pytest.mark.parametrize("ours,theirs", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_discrete_schedules_match_diffusers(ours, theirs):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=theirs)
    s = schedules.get(ours)
    assert s.num_steps == 1000 and s.betas.dtype == F64 and s.alphas_cumprod.dtype == F64
    assert torch.allclose(s.betas, ref.betas.to(F64), atol=1e-6, rtol=0)
    assert torch.allclose(s.alphas_cumprod, ref.alphas_cumprod.to(F64), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_alpha_squared_is_alphas_cumprod_at_steps(name):
    s = schedules.get(name, num_steps=200)
    t = torch.arange(1, 201, dtype=F64) / 200
    assert torch.allclose(s.alpha(t) ** 2, s.alphas_cumprod, rtol=1e-12, atol=0)
    assert torch.allclose(s.alpha(t) ** 2 + s.sigma(t) ** 2, torch.ones_like(t), atol=1e-12)
    assert float(s.alpha(torch.tensor(0.0))) == 1.0


def test_linear_endpoints_are_ddpm():
    s = schedules.get("linear")
    assert s.betas[0] == pytest.approx(1e-4, abs=1e-15) and s.betas[-1] == pytest.approx(0.02, abs=1e-15)
    # other T keep the same path: beta scaled by 1000/T
    s500 = schedules.get("linear", num_steps=500)
    assert s500.betas[0] == pytest.approx(2e-4) and s500.betas[-1] == pytest.approx(0.04)


def test_cosine_formula_and_clipping():
    s = schedules.get("cosine")
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for i in [1, 10, 500, 900]:
        assert float(s.alphas_cumprod[i - 1]) == pytest.approx(f(i / 1000) / f(0), rel=1e-9)
    # the unclipped last beta would be 1 (alpha_bar_T = 0): clipped at 0.999 (Nichol & Dhariwal)
    assert float(s.betas.max()) == pytest.approx(0.999) and float(s.betas[-1]) == pytest.approx(0.999)
    assert 0 < float(s.alphas_cumprod[-1]) < 1e-8


def test_float64_precision_near_t0():
    # 1 - alphas_cumprod[0] must equal beta_1 to float64 precision (diffusers keeps it in
    # float32, where 1 - 0.9999 loses 4 digits); sigma uses expm1 so sigma^2 keeps them too.
    s = schedules.get("linear")
    assert float(1 - s.alphas_cumprod[0]) == pytest.approx(1e-4, rel=1e-10)
    assert float(s.sigma(torch.tensor(1 / 1000, dtype=F64)) ** 2) == pytest.approx(1e-4, rel=1e-10)
    vp = schedules.get("vp")
    t = torch.tensor(1e-7, dtype=F64)
    assert float(vp.sigma(t) ** 2) == pytest.approx(0.1 * 1e-7, rel=1e-5)


def test_continuous_closed_forms():
    t = torch.linspace(0.01, 1, 50, dtype=F64)
    vp = schedules.get("vp")
    la = -0.25 * t**2 * (20 - 0.1) - 0.5 * t * 0.1
    assert torch.allclose(vp.alpha(t), torch.exp(la)) and torch.allclose(vp.sigma(t), torch.sqrt(1 - torch.exp(2 * la)))
    sub = schedules.get("subvp")
    assert torch.allclose(sub.sigma(t), 1 - torch.exp(2 * la))
    ve = schedules.get("ve")
    assert torch.allclose(ve.sigma(t), 0.01 * (50 / 0.01) ** t) and torch.allclose(ve.alpha(t), torch.ones_like(t))
    assert float(ve.sigma(torch.tensor(1.0))) == pytest.approx(50.0) and ve.prior_std == pytest.approx(math.sqrt(2501))
    fl = schedules.get("flow")
    assert torch.allclose(fl.alpha(t), 1 - t) and torch.allclose(fl.sigma(t), t)


@pytest.mark.parametrize("name", ["linear", "cosine", "vp", "subvp", "ve", "flow"])
def test_log_snr_decreases_and_derivatives_match_finite_differences(name):
    s = schedules.get(name)
    t = torch.linspace(max(s.t_min, 0.002) + 1e-4, s.t_max - 1e-3, 97, dtype=F64)
    lam = s.log_snr(t)
    assert bool((lam[1:] < lam[:-1]).all())
    h = 1e-7
    for fn, dfn in [(s.sigma, s.d_sigma), (s.alpha, s.d_alpha)]:
        fd = (fn(t + h) - fn(t - h)) / (2 * h)
        # discrete schedules are piecewise: compare away from the knots
        if s.discrete:
            t_mid = (torch.floor(t * s.num_steps) + 0.5) / s.num_steps
            fd = (fn(t_mid + h) - fn(t_mid - h)) / (2 * h)
            assert torch.allclose(dfn(t_mid), fd, rtol=1e-5, atol=1e-8)
        else:
            assert torch.allclose(dfn(t), fd, rtol=1e-5, atol=1e-8)


def test_unknown_schedule_lists_valid_names():
    with pytest.raises(ValueError) as e:
        schedules.get("cosin")
    for n in ["linear", "cosine", "vp", "subvp", "ve", "flow"]:
        assert n in str(e.value)


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_num_steps(bad):
    with pytest.raises(ValueError, match="num_steps"):
        schedules.get("linear", num_steps=bad)


def test_bad_option_is_a_value_error():
    with pytest.raises(ValueError, match="bad option"):
        schedules.get("vp", sigma_max=3)


def test_registry_extension():
    schedules.register("test-ve-small", lambda: schedules.VE(0.01, 1.0))
    try:
        assert "test-ve-small" in schedules.names()
        assert float(schedules.get("test-ve-small").sigma(torch.tensor(1.0))) == pytest.approx(1.0)
    finally:
        schedules.unregister("test-ve-small")
