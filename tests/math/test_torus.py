"""Diffusion on the circle (diffcore.math.torus): the wrapped normal against its Fourier series,
the loss's torus target as a conditional mean, and samplers on an exact wrapped-normal target.

Tolerances: a Monte Carlo mean of n draws with standard deviation sd is held to 4 sd / sqrt(n).
"""

import math

import pytest
import torch

import diffcore
from diffcore import DiffusionLoss, schedules
from diffcore.math.torus import wrap, wrapped_eps, wrapped_normal_log_prob, wrapped_normal_score

F64 = torch.float64
PI = math.pi


def fourier_density(x, sigma, terms=60):
    """The wrapped normal's density by its Fourier series (an independent formula):
    (1 + 2 sum_k exp(-k^2 sigma^2 / 2) cos(k x)) / (2 pi)."""
    k = torch.arange(1, terms + 1, dtype=F64)
    return (1 + 2 * (torch.exp(-0.5 * k**2 * sigma**2) * torch.cos(k * x[:, None])).sum(-1)) / (2 * PI)


@pytest.mark.parametrize("sigma", [0.05, 0.4, 1.0, PI, 2 * PI])
def test_wrapped_normal_matches_its_fourier_series_and_integrates_to_one(sigma):
    x = torch.linspace(-PI, PI, 2001, dtype=F64)
    p = wrapped_normal_log_prob(x, sigma).exp()
    if sigma >= 0.4:  # the series converges fast only for wide kernels
        assert torch.allclose(p, fourier_density(x, sigma), rtol=1e-9, atol=1e-12)
    assert abs(float(torch.trapezoid(p, x)) - 1.0) < 1e-6
    # periodic: the density at x and x + 2 pi k agree
    assert torch.allclose(wrapped_normal_log_prob(x + 4 * PI, sigma), wrapped_normal_log_prob(x, sigma), atol=1e-9)


@pytest.mark.parametrize("sigma", [0.1, 1.0, 3.0])
def test_score_is_the_derivative_of_the_log_density(sigma):
    x = torch.linspace(-7.0, 7.0, 101, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(wrapped_normal_log_prob(x, sigma).sum(), x)
    assert torch.allclose(wrapped_normal_score(x.detach(), sigma), grad, atol=1e-9)


def test_wrap_lands_in_the_fundamental_interval():
    x = torch.tensor([-7.0, -PI, 0.0, PI, 3 * PI + 0.1, 100.0], dtype=F64)
    w = wrap(x)
    assert bool(((w >= -PI) & (w < PI)).all())
    assert torch.allclose(torch.cos(w), torch.cos(x)) and torch.allclose(torch.sin(w), torch.sin(x), atol=1e-12)


def test_wrapped_eps_is_the_conditional_mean_of_the_noise():
    """eps - E[eps | sigma eps mod 2 pi] is orthogonal to every function of the wrapped
    displacement (here sin k d, cos k d): the residual's correlation with each is 0 within
    4 standard errors, while the raw eps is far from its own wrapped value when sigma is large."""
    n, sigma = 200_000, 2.5
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(n, generator=g, dtype=F64)
    d = sigma * eps
    target = wrapped_eps(eps, torch.tensor(sigma, dtype=F64))
    resid = eps - target
    for k in (1, 2, 3):
        for f in (torch.sin(k * d), torch.cos(k * d)):
            prod = resid * f
            assert abs(float(prod.mean())) < 4 * float(prod.std()) / math.sqrt(n)
    assert float((resid**2).mean()) > 0.1  # the wrapping matters at this sigma
    small = wrapped_eps(eps, torch.tensor(0.05, dtype=F64))
    assert torch.allclose(small, eps, atol=1e-9)  # and not when sigma is small against the period


def test_the_loss_refuses_a_shrinking_schedule_and_uses_the_torus_target():
    with pytest.raises(ValueError, match="alpha = 1"):
        DiffusionLoss("cosine", period=2 * PI)
    with pytest.raises(ValueError, match="positive"):
        DiffusionLoss("ve", period=-1.0)
    s = schedules.get("ve", sigma_min=0.01, sigma_max=PI)
    x0 = torch.full((4096, 1), 3.0, dtype=F64)
    t = torch.full((4096,), 1.0)
    g = torch.Generator().manual_seed(1)
    # the exact torus predictor: x_t is read modulo 2 pi, so it predicts the conditional mean
    exact = lambda x, t: wrapped_eps((x - 3.0) / PI, torch.tensor(PI, dtype=F64))  # noqa: E731
    torus = DiffusionLoss(s, period=2 * PI)(exact, x0, t=t, generator=g)
    assert float(torus) < 1e-12
    plain = DiffusionLoss(s)(exact, x0, t=t, generator=torch.Generator().manual_seed(1))
    assert float(plain) > 0.1  # against the raw eps the same predictor is far off


def wrapped_target_predictor(mu, s):
    """The exact eps predictor on the circle for data WN(mu, s^2) under the VE schedule: the
    marginal at noise sigma is WN(mu, s^2 + sigma^2), and eps = -sigma grad log p_t."""

    def predict(x, sigma):
        var = s**2 + sigma**2
        return -sigma * wrapped_normal_score(x - mu, var.sqrt()).to(x.dtype)

    return predict


@pytest.mark.parametrize("sampler,steps", [("ddim", 1000), ("heun", 100), ("euler-maruyama", 1000)])
def test_samplers_on_the_covering_space_reproduce_a_wrapped_normal(sampler, steps):
    """Data WN(mu = 2.9, 0.4^2) sit across the seam at pi. Sampling on R with the exact periodic
    predictor and wrapping once at the end gives E[cos(x - mu)] = exp(-s^2 / 2) and
    E[sin(x - mu)] = 0 within 4 standard errors."""
    mu, s, n = 2.9, 0.4, 20_000
    sched = schedules.get("ve", sigma_min=0.005, sigma_max=2 * PI)  # at 2 pi the wrapped prior is uniform to 1e-8
    pred = wrapped_target_predictor(mu, s)
    model = lambda x, t: pred(x, sched.sigma(t.detach().cpu()).to(F64).reshape(-1, *([1] * (x.ndim - 1))))  # noqa: E731
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(n, 1, generator=g, dtype=F64)
    x = diffcore.generate(model, noise, sched, sampler=sampler, steps=steps, generator=g)
    x = wrap(x[:, 0])
    c, sn = torch.cos(x - mu), torch.sin(x - mu)
    assert abs(float(c.mean()) - math.exp(-(s**2) / 2)) < 4 * float(c.std()) / math.sqrt(n)
    assert abs(float(sn.mean())) < 4 * float(sn.std()) / math.sqrt(n)
    # and the samples crossed the seam: both sides of pi are populated as the target says
    frac = float((x < 0).double().mean())
    target = float(torch.distributions.Normal(mu, s).cdf(torch.tensor(-PI + 2 * PI)).neg().add(1))  # P(x > pi) before wrapping
    assert abs(frac - target) < 4 * math.sqrt(target * (1 - target) / n)


def test_the_loss_refuses_predictions_a_periodic_network_cannot_learn():
    for prediction in ("x0", "v"):
        with pytest.raises(ValueError, match="periodic"):
            DiffusionLoss(schedules.get("ve", sigma_min=0.01, sigma_max=PI), prediction=prediction, period=2 * PI)
