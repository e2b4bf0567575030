"""The suite of exact targets (diffcore.testing.suite) and the targets behind it.

Every target's closed forms are checked against each other and against its samples: the score
is autograd of the noised log-density, x0_mean is Tweedie, noised samples have the marginal's
mean and covariance and satisfy Stein's identity for the score (tolerances from the sample's
own standard errors). The diagonal path is checked against the isotropic one and the product
against 1-D mixtures. Then the z-score: DDIM with the exact predictor at 200 steps is within
noise of the target, at 3 steps it is far off; and the split into TUNING / HELD_OUT.
"""

from __future__ import annotations

import pytest
import torch

import diffcore
from diffcore import schedules
from diffcore.testing import suite
from diffcore.testing.targets import GaussianMixture, ProductMixture

F64 = torch.float64
NAMES = list(suite.TARGETS)
SCHEDULES = ("cosine", "ve", "flow")


def noised(target, n, schedule, seed, t_lo=0.02, t_hi=0.9):
    """n noised target samples alpha x0 + sigma eps at times spread over [t_lo, t_hi]."""
    g = torch.Generator().manual_seed(seed)
    t = t_lo + (t_hi - t_lo) * torch.rand(n, generator=g, dtype=F64)
    a, s = schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]
    return a * target.sample(n, g) + s * torch.randn(n, target.dim, generator=g, dtype=F64), t, a, s


def close(x, y, rel):
    scale = float(y.abs().max())
    torch.testing.assert_close(x, y, rtol=rel, atol=rel * scale)


# --------------------------------------------------------------------- the closed forms
@pytest.mark.parametrize("name", NAMES)
def test_score_is_autograd_of_log_prob_and_x0_mean_is_tweedie(name):
    target = suite.get(name)
    for i, sn in enumerate(SCHEDULES):
        s = schedules.get(sn)
        x, t, a, sig = noised(target, 64, s, seed=i)
        x = x.requires_grad_(True)
        (grad,) = torch.autograd.grad(target.log_prob(x, t, s).sum(), x)
        x = x.detach()
        score = target.score(x, t, s)
        close(score, grad, 1e-8)
        close(target.x0_mean(x, t, s), (x + sig**2 * score) / a, 1e-8)
        close(target.predictor(s, "eps")(x, t), -sig * score, 1e-8)
    # the data density is the t = 0 one: log_prob(x) without t, and with the time-0 coefficients
    x0 = target.sample(16, torch.Generator().manual_seed(9))
    assert torch.isfinite(target.log_prob(x0)).all()
    s = schedules.get("flow")  # alpha = 1 - t, sigma = t
    assert torch.allclose(target.log_prob(x0, 1e-9, s), target.log_prob(x0), rtol=1e-6, atol=1e-6)


def max_standardised(values, expected):
    """max |mean(values) - expected| / standard error over entries; values: [n, ...]."""
    n = values.shape[0]
    se = values.std(0) / n**0.5
    return float(((values.mean(0) - expected).abs() / se.clamp_min(1e-300)).max())


def max_standardised_cov(c, expected):
    """max_standardised(c_i c_j, expected) without the [n, D, D] products: the standard error
    of each entry from the sample's fourth moments."""
    n = c.shape[0]
    m1 = c.T @ c / n
    m2 = (c**2).T @ (c**2) / n
    se = ((m2 - m1**2) * n / (n - 1)).clamp_min(1e-300).sqrt() / n**0.5
    return float(((m1 - expected).abs() / se).max())


@pytest.mark.parametrize("name", NAMES)
def test_noised_samples_have_the_marginal_moments(name):
    """Sample mean and covariance of alpha x0 + sigma eps within 5.5 standard errors (each
    entry's standard error from the sample's own fourth moments) of moments(alpha, sigma)."""
    target, n = suite.get(name), 20_000
    g = torch.Generator().manual_seed(1)
    s = schedules.get("cosine")
    for t in (0.0, 0.3, 0.7):
        tt = torch.tensor([t], dtype=F64)
        a, sig = float(s.alpha(tt)), (float(s.sigma(tt)) if t else 0.0)
        x = a * target.sample(n, g) + sig * torch.randn(n, target.dim, generator=g, dtype=F64)
        mean, cov = target.moments(a, sig)
        assert max_standardised(x, mean) < 5.5, t
        assert max_standardised_cov(x - mean, cov) < 5.5, t
    # the check can fail: the same sample against the moments of alpha, sigma 15% larger
    assert max_standardised_cov(x - mean, target.moments(1.15 * a, 1.15 * sig)[1]) > 8


@pytest.mark.parametrize("name", NAMES)
def test_stein_identity_ties_the_score_to_the_samples(name):
    """For x ~ p_t: E[score(x)] = 0 and E[score(x) x^T] = -I, within 5.5 standard errors."""
    target, n = suite.get(name), 4000
    s = schedules.get("cosine")
    x, t, _, _ = noised(target, n, s, seed=3, t_lo=0.2, t_hi=0.2000001)
    sc = target.score(x, t, s)
    assert max_standardised(sc, torch.zeros(target.dim, dtype=F64)) < 5.5
    assert max_standardised(sc[:, :, None] * x[:, None, :], -torch.eye(target.dim, dtype=F64)) < 5.5
    wrong = target.score(x, 2 * t, s)  # the check can fail: the score of another time
    assert max_standardised(wrong[:, :, None] * x[:, None, :], -torch.eye(target.dim, dtype=F64)) > 8


def test_diagonal_path_agrees_with_the_isotropic_one():
    iso = GaussianMixture.default()
    diag = GaussianMixture(iso.means, iso.stds[:, None].expand(-1, 2), iso.weights)
    assert not iso.diagonal and diag.diagonal and diag.stds.shape == (3, 2)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(iso.sample(100, g.manual_seed(1)), diag.sample(100, g.manual_seed(1)))
    x = 2 * torch.randn(50, 2, generator=g, dtype=F64)
    t = torch.rand(50, generator=g, dtype=F64) * 0.9 + 0.05
    s = schedules.get("linear")
    for f in ("score", "x0_mean"):
        close(getattr(diag, f)(x, t, s), getattr(iso, f)(x, t, s), 1e-12)
    close(diag.log_prob(x, t, s), iso.log_prob(x, t, s), 1e-12)
    close(diag.log_prob(x), iso.log_prob(x), 1e-12)
    torch.testing.assert_close(diag.moments(0.5, 0.7), iso.moments(0.5, 0.7))
    with pytest.raises(ValueError, match="expected"):
        GaussianMixture(iso.means, torch.ones(3, 3))


def test_product_is_a_product_of_1d_mixtures():
    p = suite.get("product-8d-3")
    parts = [GaussianMixture(p.means[d, :, None], p.stds[d], p.weights[d]) for d in range(p.dim)]
    g = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(40, p.dim, generator=g, dtype=F64)
    t = torch.rand(40, generator=g, dtype=F64) * 0.9 + 0.05
    s = schedules.get("cosine")
    close(p.log_prob(x, t, s), sum(q.log_prob(x[:, d:d + 1], t, s) for d, q in enumerate(parts)), 1e-12)
    for f in ("score", "x0_mean"):
        close(getattr(p, f)(x, t, s), torch.cat([getattr(q, f)(x[:, d:d + 1], t, s) for d, q in enumerate(parts)], 1), 1e-12)
    assert p.modes == 3**8 and suite.get("product-64d-2").modes == 2**64
    one = ProductMixture([[-1.0, 2.0]], [[0.3, 0.1]], [[0.25, 0.75]])
    assert abs(float((one.sample(20_000, g) > 0.5).double().mean()) - 0.75) < 0.02


# ------------------------------------------------------------------------- the z-score
RUN_N = 1500
RUN_TARGETS = ("aniso-2d-6", "ring-2d-8", "aniso-32d-12")


def ddim(name, steps):
    target, s = suite.get(name), schedules.get("cosine")
    g = torch.Generator().manual_seed(11)
    noise = torch.randn(RUN_N, target.dim, generator=g, dtype=F64)
    return diffcore.generate(target.predictor(s), noise, s, sampler="ddim", steps=steps, generator=g)


@pytest.mark.parametrize("name", RUN_TARGETS)
def test_exact_ddim_is_within_noise_and_too_few_steps_is_not(name):
    z = suite.z_score(ddim(name, 200), name, RUN_N, seed=1)
    assert abs(z) < 3, f"{name}: DDIM 200 steps z = {z:.2f}"
    z3 = suite.z_score(ddim(name, 3), name, RUN_N, seed=1)
    assert z3 > 20, f"{name}: DDIM 3 steps z = {z3:.2f} (the check should fail)"


def test_z_score_of_the_target_itself_and_the_null_cache():
    name = "unbalanced-8d-3"
    target = suite.get(name)
    zs = [suite.z_score(target.sample(500, torch.Generator().manual_seed(100 + i)), name, seed=i) for i in range(5)]
    assert all(abs(z) < 4 for z in zs), zs
    assert suite.null_stats(name, 500) is suite.null_stats(target, 500)  # computed once, by object
    mean, std = suite.null_stats(name, 500)
    assert mean > 0 and std > 0
    assert suite.z_score(target.sample(500) + 0.5, target, seed=0) > 10
    with pytest.raises(ValueError):
        suite.z_score(torch.zeros(500, 3), name)
    with pytest.raises(ValueError, match="unknown target"):
        suite.get("nope")


# -------------------------------------------------------------------------- the split
def test_tuning_and_held_out_split_the_suite_and_each_covers_the_spread():
    tuning, held = set(suite.TUNING), set(suite.HELD_OUT)
    assert not tuning & held and tuning | held == set(suite.TARGETS)
    assert len(suite.TUNING) == len(tuning) and len(suite.HELD_OUT) == len(held)
    assert abs(len(tuning) - len(held)) <= 2 and 10 <= len(suite.TARGETS) <= 12
    old = GaussianMixture.default()
    first = suite.get("mixture-2d-3")
    assert "mixture-2d-3" in tuning and all(torch.equal(getattr(first, k), getattr(old, k)) for k in ("means", "stds", "weights"))
    for half in (suite.TUNING, suite.HELD_OUT):
        d = [suite.describe(n) for n in half]
        assert min(p["dim"] for p in d) == 2 and max(p["dim"] for p in d) >= 32
        assert any(p["kind"] == "ProductMixture" for p in d) and any(p["anisotropic"] for p in d)
        assert min(p["std_min"] for p in d) <= 0.05 and max(p["std_max"] for p in d) >= 1.5
        assert max(p["max_abs_mean"] for p in d) >= 4.5 and max(p["weight_max"] for p in d) >= 0.9
        assert max(p["modes"] for p in d if p["kind"] == "GaussianMixture") >= 16
    all_d = [suite.describe(n) for n in suite.TARGETS]
    assert {p["dim"] for p in all_d} >= {2, 64} and max(p["max_abs_mean"] for p in all_d) <= 5.0


def test_targets_are_deterministic():
    for name, factory in suite.TARGETS.items():
        a, b = factory(), factory()
        assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("means", "stds", "weights")), name
