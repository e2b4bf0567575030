"""The seeded Brownian tree (diffcore.math.sampling.brownian): W(t) depends on the seed and t
only, whatever the grid or the order of the queries; its increments over any grid are
independent N(0, dt); a seed gives one path, another seed another.

Statistical tolerances: with n independent draws a sample mean has standard error 1/sqrt(n)
(for a N(0, 1)), a sample variance sqrt(2/n), a sample correlation 1/sqrt(n); the checks
allow 5 standard errors (a false alarm about once in 3.5 million per check)."""

import math

import pytest
import torch

from diffcore.math.sampling.brownian import BrownianTree, brownian_noise

F64 = torch.float64
LIKE = torch.empty(3, 4)


@pytest.mark.parametrize("geometric", [False, True])
def test_the_path_is_the_same_whatever_the_grid_and_order(geometric):
    t0, t1 = (1e-3, 1e3) if geometric else (0.0, 2.0)
    pick = torch.rand(40, generator=torch.Generator().manual_seed(0), dtype=F64)
    times = [t0 + float(u) * (t1 - t0) if not geometric else t0 * (t1 / t0) ** float(u) for u in pick]
    fwd = BrownianTree(LIKE, 7, t0, t1, geometric=geometric)
    w = {t: fwd(t) for t in sorted(times)}
    back = BrownianTree(LIKE, 7, t0, t1, geometric=geometric)  # the other order, other times between
    for k, t in enumerate(sorted(times, reverse=True)):
        back(t0 + (t1 - t0) * (k + 0.5) / 41)
        assert torch.equal(back(t), w[t])
    assert torch.equal(fwd(t0), torch.zeros(3, 4, dtype=F64))
    a, b, c = sorted(times)[3], sorted(times)[17], sorted(times)[30]
    # the increment over [a, c] is the sum of those over [a, b] and [b, c] (to rounding)
    whole = fwd.increment(a, c) * math.sqrt(c - a)
    parts = fwd.increment(a, b) * math.sqrt(b - a) + fwd.increment(b, c) * math.sqrt(c - b)
    assert float((whole - parts).abs().max()) < 1e-12


@pytest.mark.parametrize("geometric", [False, True])
def test_increments_are_independent_normals_of_variance_dt(geometric):
    """n = 40000 coordinates; 7 steps of uneven sizes, none on a dyadic point."""
    n = 40_000
    t0, t1 = (0.01, 100.0) if geometric else (0.0, 1.0)
    tree = BrownianTree(torch.empty(n), 3, t0, t1, geometric=geometric)
    u = [0.0, 0.013, 0.1, 0.2371, 0.5, 0.61, 0.9, 1.0]
    grid = [t0 * (t1 / t0) ** v if geometric else t0 + v * (t1 - t0) for v in u]
    z = torch.stack([tree.increment(t, s) for t, s in zip(grid, grid[1:])])  # normalised: N(0, 1) each
    se = 1 / math.sqrt(n)
    assert float(z.mean(1).abs().max()) < 5 * se
    assert float((z.var(1) - 1).abs().max()) < 5 * math.sqrt(2 / n)
    corr = torch.corrcoef(z)
    off = corr - torch.eye(len(z), dtype=F64)
    assert float(off.abs().max()) < 5 * se
    # the coordinates are independent too (a shared draw would correlate them)
    assert abs(float(torch.corrcoef(torch.stack([z[2, : n // 2], z[2, n // 2:]]))[0, 1])) < 5 * math.sqrt(2 / n)


def test_a_seed_is_one_path_and_another_seed_another():
    n = 10_000
    a, b, c = (BrownianTree(torch.empty(n), s, 0.0, 1.0) for s in (5, 5, 6))
    assert torch.equal(a(0.3), b(0.3)) and torch.equal(a.increment(0.3, 0.35), b.increment(0.3, 0.35))
    r = float(torch.corrcoef(torch.stack([a.increment(0.3, 0.35), c.increment(0.3, 0.35)]))[0, 1])
    assert abs(r) < 5 / math.sqrt(n)


def test_sampler_noise_is_grid_invariant_and_keeps_the_domain_space():
    """brownian_noise (the SDE samplers' z): seeded from the generator, one path in SNR^eta
    time: z over [l0, l2] is the variance-weighted sum of z over [l0, l1] and [l1, l2]. With a
    domain's noise_fn (here zero mean over the last axis, a projection like zero centre of
    mass) the noise stays in its space."""
    like = torch.empty(64, 5, dtype=F64)
    z1 = brownian_noise(like, 1.0, generator=torch.Generator().manual_seed(4))
    z2 = brownian_noise(like, 1.0, generator=torch.Generator().manual_seed(4))
    l0, l1, l2 = -4.0, -1.3, 2.2
    v01, v12 = math.exp(2 * l1) - math.exp(2 * l0), math.exp(2 * l2) - math.exp(2 * l1)
    fine = (math.sqrt(v01) * z1(l0, l1) + math.sqrt(v12) * z1(l1, l2)) / math.sqrt(v01 + v12)
    assert torch.allclose(fine, z2(l0, l2), atol=1e-12, rtol=0)
    assert not torch.equal(z2(l0, l2), brownian_noise(like, 1.0, generator=torch.Generator().manual_seed(5))(l0, l2))
    g = torch.Generator().manual_seed(0)
    centred = lambda x: (lambda e: e - e.mean(-1, keepdim=True))(torch.randn(x.shape, generator=g, dtype=x.dtype))  # noqa: E731
    z = brownian_noise(like, 1.0, generator=g, noise_fn=centred)(l0, l1)
    assert float(z.mean(-1).abs().max()) < 1e-12 and float(z.std()) > 0.5
    with pytest.raises(ValueError, match="outside"):
        z1(-30.0, 0.0)


def test_a_forward_sweep_needs_only_the_last_path_in_the_cache():
    """Samplers query forward in time; the cache keeps depth + 2 nodes (the last query's path), and
    a tree drawing its node normals in visiting order (a domain's noise function) gives the same
    path as one that keeps every node: nothing needed was dropped and drawn again."""
    from diffcore.math.sampling import brownian

    like = torch.zeros(3, 4)
    times = sorted(torch.rand(200, generator=torch.Generator().manual_seed(5)).tolist())

    def tree():
        g = torch.Generator().manual_seed(11)
        return brownian.BrownianTree(like, 0, 0.0, 1.0, draw=lambda key: torch.randn(like.shape, generator=g, dtype=torch.float64))

    small, every = tree(), tree()
    every._node = _unbounded(every)
    a = [small(t).clone() for t in times]
    b = [every(t).clone() for t in times]
    assert len(small._cache) <= small.depth + 2 < len(every._cache)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def _unbounded(tree):
    """``tree._node`` without the cache's bound."""
    def node(key, a, m, b, wa, wb):
        w = tree._cache.get(key)
        if w is None:
            bridge = (m - a) / (b - a) * (wb - wa) if wa is not None else (m - a) / (b - a) * wb
            w = bridge + ((m - a) * (b - m) / (b - a)) ** 0.5 * tree._draw(key)
            w = w + wa if wa is not None else w
            tree._cache[key] = w
        return w
    return node
