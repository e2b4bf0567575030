"""Forward process: closed form vs the chain, the posterior, prediction conversions."""

import math

import pytest
import torch

from diffcore import forward, schedules

F64 = torch.float64
ALL = ["linear", "cosine", "vp", "subvp", "ve", "flow"]


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("step", [10, 250, 1000])
def test_closed_form_matches_the_chain(name, step):
    """x_t from t single steps x_k = sqrt(1 - beta_k) x_{k-1} + sqrt(beta_k) z has the closed
    form's mean alpha_t x0 and variance sigma_t^2, within sampling error (5 standard errors)."""
    s = schedules.get(name)
    n = 40_000
    g = torch.Generator().manual_seed(step)
    x0 = 1.5
    x = torch.full((n,), x0, dtype=F64)
    keep, add = torch.sqrt(1 - s.betas).tolist(), torch.sqrt(s.betas).tolist()
    for start in range(0, step, 100):
        z = torch.randn(min(100, step - start), n, generator=g, dtype=F64)
        for j, k in enumerate(range(start, start + len(z))):
            x = keep[k] * x + add[k] * z[j]
    t = torch.tensor(step / s.num_steps, dtype=F64)
    mean, std = float(s.alpha(t)) * x0, float(s.sigma(t))
    assert abs(float(x.mean()) - mean) < 5 * std / math.sqrt(n)
    assert abs(float(x.var()) - std**2) < 5 * std**2 * math.sqrt(2 / n)
    # and the closed-form sampler draws the same law
    xc = forward.q_sample(s, torch.full((n,), x0, dtype=F64), t.expand(n), torch.randn(n, generator=g, dtype=F64))
    assert abs(float(xc.mean()) - mean) < 5 * std / math.sqrt(n)
    assert abs(float(xc.var()) - std**2) < 5 * std**2 * math.sqrt(2 / n)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_posterior_is_ddpm_eq7(name):
    s = schedules.get(name)
    T = s.num_steps
    x_t, x0 = torch.tensor([0.3], dtype=F64), torch.tensor([-0.7], dtype=F64)
    for i in [2, 50, 999, 1000]:
        ab_t, ab_s, beta = s.alphas_cumprod[i - 1], s.alphas_cumprod[i - 2], s.betas[i - 1]
        mean, var = forward.posterior(s, x_t, x0, i / T, (i - 1) / T)
        c0 = torch.sqrt(ab_s) * beta / (1 - ab_t)
        ct = torch.sqrt(1 - beta) * (1 - ab_s) / (1 - ab_t)
        assert float(mean) == pytest.approx(float(c0 * x0 + ct * x_t), rel=1e-9)
        assert float(var) == pytest.approx(float((1 - ab_s) / (1 - ab_t) * beta), rel=1e-9)


@pytest.mark.parametrize("name", ALL)
def test_posterior_marginalises_to_q(name):
    """Integrating q(x_s | x_t, x0) over q(x_t | x0) gives q(x_s | x0): the mean's x0
    coefficient is alpha_s and the variances add up to sigma_s^2."""
    s = schedules.get(name)
    for t, u in [(0.9, 0.5), (0.5, 0.49), (0.3, 0.05)]:
        t64, u64 = torch.tensor(t, dtype=F64), torch.tensor(u, dtype=F64)
        one = torch.ones(1, dtype=F64)
        c_x = forward.posterior(s, one, 0 * one, t, u)[0]
        c_0 = forward.posterior(s, 0 * one, one, t, u)[0]
        var = forward.posterior(s, one, one, t, u)[1]
        assert float(c_x * s.alpha(t64) + c_0) == pytest.approx(float(s.alpha(u64)), rel=1e-9)
        assert float(c_x**2 * s.sigma(t64) ** 2 + var) == pytest.approx(float(s.sigma(u64) ** 2), rel=1e-9)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("source", forward.PREDICTIONS)
def test_prediction_conversions_round_trip(name, source):
    s = schedules.get(name)
    g = torch.Generator().manual_seed(0)
    t = s.t_min + (s.t_max - s.t_min) * torch.rand(64, generator=g, dtype=F64)
    x0, eps = torch.randn(64, 3, generator=g, dtype=F64), torch.randn(64, 3, generator=g, dtype=F64)
    x_t = forward.q_sample(s, x0, t, eps)
    out = forward.from_x0_eps(source, x0, eps, t, s)
    x0_back, eps_back = forward.to_x0_eps(source, out, x_t, t, s)
    assert torch.allclose(x0_back, x0, atol=1e-6) and torch.allclose(eps_back, eps, atol=1e-6)
    for target in forward.PREDICTIONS:
        there = forward.convert(out, source, target, x_t, t, s)
        back = forward.convert(there, target, source, x_t, t, s)
        assert torch.allclose(back, out, rtol=1e-6, atol=1e-6)


def test_named_predictions_have_their_paper_definitions():
    g = torch.Generator().manual_seed(1)
    t = torch.rand(16, generator=g, dtype=F64) * 0.9 + 0.05
    x0, eps = torch.randn(16, 2, generator=g, dtype=F64), torch.randn(16, 2, generator=g, dtype=F64)
    fl = schedules.get("flow")
    assert torch.allclose(forward.from_x0_eps("velocity", x0, eps, t, fl), eps - x0)  # rectified flow
    vp = schedules.get("cosine")
    a, s = vp.alpha(t)[:, None], vp.sigma(t)[:, None]
    assert torch.allclose(forward.from_x0_eps("v", x0, eps, t, vp), a * eps - s * x0)  # Salimans & Ho
    assert torch.allclose(forward.from_x0_eps("score", x0, eps, t, vp), -eps / s)
    with pytest.raises(ValueError, match="valid"):
        forward.from_x0_eps("noise", x0, eps, t, vp)
