"""The SDE view against Song et al. (2021) and the likelihood against an exact density."""

import math

import pytest
import torch

import diffcore
from diffcore import forward, schedules
from diffcore.testing import GaussianMixture

F64 = torch.float64
T = torch.linspace(0.01, 1.0, 40, dtype=F64)


def test_vp_sde_closed_form():
    f, g2 = diffcore.SDE("vp").coefficients(T)
    beta = 0.1 + T * (20 - 0.1)
    assert torch.allclose(f, -0.5 * beta) and torch.allclose(g2, beta)


def test_subvp_sde_closed_form():
    f, g2 = diffcore.SDE("subvp").coefficients(T)
    beta = 0.1 + T * (20 - 0.1)
    integral = 0.1 * T + 0.5 * T**2 * (20 - 0.1)
    assert torch.allclose(f, -0.5 * beta) and torch.allclose(g2, beta * (1 - torch.exp(-2 * integral)))


def test_ve_sde_closed_form():
    f, g2 = diffcore.SDE("ve").coefficients(T)
    sigma = 0.01 * (50 / 0.01) ** T
    assert torch.allclose(f, torch.zeros_like(T)) and torch.allclose(g2, sigma**2 * 2 * math.log(50 / 0.01))


@pytest.mark.parametrize("name", ["linear", "cosine", "flow"])
def test_sde_marginal_variance_ode(name):
    """d(sigma^2)/dt = 2 f sigma^2 + g^2 on any path (the definition of g), checked by
    finite differences away from discrete knots."""
    s = schedules.get(name)
    sde = diffcore.SDE(s)
    t = torch.tensor([0.2055, 0.5005, 0.8505], dtype=F64)
    f, g2 = sde.coefficients(t)
    h = 1e-6
    dvar = (s.sigma(t + h) ** 2 - s.sigma(t - h) ** 2) / (2 * h)
    assert torch.allclose(dvar, 2 * f * s.sigma(t) ** 2 + g2, rtol=1e-5)
    assert bool((g2 > 0).all())


@pytest.mark.parametrize("name", ["vp", "cosine", "ve", "flow"])
def test_probability_flow_drift_is_the_path_velocity(name):
    """f x - g^2 score / 2 equals alpha' E[x0|x] + sigma' E[eps|x] (the flow velocity)."""
    s = schedules.get(name)
    gm = GaussianMixture.default()
    g = torch.Generator().manual_seed(0)
    t = torch.full((64,), 0.4, dtype=F64)
    x = forward.q_sample(s, gm.sample(64, g), t, torch.randn(64, 2, generator=g, dtype=F64))
    sde = diffcore.SDE(s)
    pf = sde.reverse_drift(sde.score_from(gm.predictor(s, "eps"), "eps"), x, t, probability_flow=True)
    assert torch.allclose(pf, gm.predictor(s, "velocity")(x, t), atol=1e-8)
    rev = sde.reverse_drift(lambda x, t: gm.score(x, t, s), x, t)
    f, g2 = sde.coefficients(t)
    assert torch.allclose(rev, f[:, None] * x - g2[:, None] * gm.score(x, t, s))


@pytest.mark.parametrize("name,exact", [("vp", False), ("cosine", True), ("ve", True)])
def test_nll_of_a_gaussian_is_exact(name, exact):
    """NLL through the probability-flow ODE of N(mu, 0.5^2 I) in 2-D, with its exact
    predictor, is within 3% of the true NLL (Hutchinson: 2 probes over 400 points)."""
    gm = GaussianMixture([[0.3, -0.2]], [0.5])
    s = schedules.get(name)
    x = gm.sample(400, torch.Generator().manual_seed(1))
    est = -diffcore.log_likelihood(gm.predictor(s, "eps"), x, s, steps=60, exact=exact, probes=2,
                                   generator=torch.Generator().manual_seed(2))
    true = -gm.log_prob(x)
    assert float(est.mean()) == pytest.approx(float(true.mean()), rel=0.03)
    if exact:
        assert torch.allclose(est, true, rtol=0.05, atol=0.05)  # per point, not just on average
    bpd = diffcore.bits_per_dim(gm.predictor(s, "eps"), x[:50], s, steps=60, exact=True)
    assert float(bpd.mean()) == pytest.approx(float(true[:50].mean()) / (2 * math.log(2)), rel=0.03)
