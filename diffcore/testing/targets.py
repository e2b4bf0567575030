"""Analytic targets for tests, benchmarks and plugin authors.

:class:`GaussianMixture` is a data distribution whose noised marginals are known in closed
form under any schedule: if x0 ~ sum_k pi_k N(mu_k, s_k^2 I), then
    p_t(x) = sum_k pi_k N(x; alpha mu_k, (alpha^2 s_k^2 + sigma^2) I),
so the exact score, and through it the exact eps / x0 / v / velocity predictor, is available
(the ideal network). Feeding it to a sampler isolates the sampler's own error.

:func:`energy_distance` (Szekely & Rizzo 2013) compares two sample sets;
:meth:`GaussianMixture.null_distances` gives its spread between two independent sample sets of
the target itself, so "within sampling noise" is a threshold derived from the sample size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..math import schedules as _schedules
from ..math.forward import from_x0_eps
from ..math.schedules import Schedule


class GaussianMixture:
    """Isotropic Gaussian mixture in ``dim`` dimensions (float64 throughout)."""

    def __init__(self, means: Sequence[Sequence[float]] | torch.Tensor, stds: Sequence[float] | float = 0.1, weights: Sequence[float] | None = None):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        k, self.dim = self.means.shape
        self.stds = torch.as_tensor(stds, dtype=torch.float64).expand(k).clone()
        w = torch.ones(k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.weights = w / w.sum()

    @classmethod
    def default(cls, dim: int = 2) -> "GaussianMixture":
        """Three well-separated, unequal components in 2-D (a standard test target)."""
        if dim != 2:
            g = torch.Generator().manual_seed(0)
            return cls(torch.randn(3, dim, generator=g, dtype=torch.float64), 0.2, [0.5, 0.3, 0.2])
        return cls([[-1.0, -0.5], [1.0, -0.5], [0.0, 1.0]], [0.15, 0.25, 0.2], [0.5, 0.3, 0.2])

    # ----------------------------------------------------------------- samples
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self._log_components(x.to(torch.float64), 1.0, 0.0).logsumexp(dim=1)

    # ------------------------------------------------------------- the marginals
    def _log_components(self, x, alpha, sigma):
        # alpha, sigma: floats or [B, 1] tensors
        var = alpha**2 * self.stds**2 + sigma**2  # [K] or [B, K]
        a3 = alpha[..., None] if torch.is_tensor(alpha) else alpha
        d2 = ((x[:, None, :] - a3 * self.means[None]) ** 2).sum(-1)
        return torch.log(self.weights) - 0.5 * d2 / var - 0.5 * self.dim * torch.log(2 * math.pi * var)

    def _coeffs(self, t: torch.Tensor, schedule: Schedule):
        t = t.detach().cpu().to(torch.float64)
        return schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]

    def score(self, x: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """grad log p_t(x), exact."""
        x64 = x.cpu().to(torch.float64)  # differentiable (likelihood needs d/dx)
        a, s = self._coeffs(t, schedule)
        var = a**2 * self.stds[None] ** 2 + s**2  # [B, K]
        r = torch.softmax(self._log_components(x64, a, s), dim=1)  # responsibilities
        diff = x64[:, None, :] - a[:, :, None] * self.means[None]  # [B, K, D]
        sc = -(r[:, :, None] * diff / var[:, :, None]).sum(1)
        return sc.to(x)

    def x0_mean(self, x: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """E[x0 | x_t = x], exact (Tweedie: (x + sigma^2 score) / alpha)."""
        x64 = x.cpu().to(torch.float64)  # differentiable (likelihood needs d/dx)
        a, s = self._coeffs(t, schedule)
        var = a**2 * self.stds[None] ** 2 + s**2
        r = torch.softmax(self._log_components(x64, a, s), dim=1)
        gain = (a * self.stds[None] ** 2 / var)[:, :, None]  # [B, K, 1]
        comp = self.means[None] + gain * (x64[:, None, :] - a[:, :, None] * self.means[None])
        return (r[:, :, None] * comp).sum(1).to(x)

    def predictor(self, schedule: Schedule | str, prediction: str = "eps"):
        """The exact ``model(x_t, t)`` returning ``prediction`` (the ideal network)."""
        schedule = _schedules.get(schedule)

        def model(x, t, cond=None):
            x64 = x.cpu().to(torch.float64)  # differentiable (likelihood needs d/dx)
            t64 = t.detach().cpu().to(torch.float64)
            x0 = self.x0_mean(x64, t64, schedule)
            a, s = self._coeffs(t64, schedule)
            eps = (x64 - a * x0) / s
            return from_x0_eps(prediction, x0, eps, t64, schedule).to(x)

        return model

    # -------------------------------------------------------------- distances
    def null_distances(self, n: int, m: int | None = None, repeats: int = 20, seed: int = 0) -> torch.Tensor:
        """Energy distances between independent target samples of sizes n and m: the
        distance's sampling-noise distribution at these sizes."""
        g = torch.Generator().manual_seed(seed)
        m = m or n
        return torch.stack([energy_distance(self.sample(n, g), self.sample(m, g)) for _ in range(repeats)])


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (V-statistic), >= 0, zero iff equal laws."""
    x = x.flatten(1).to(torch.float64)
    y = y.flatten(1).to(torch.float64)
    return 2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()

