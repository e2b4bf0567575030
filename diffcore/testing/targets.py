"""Analytic targets for tests, benchmarks and plugin authors.

:class:`GaussianMixture` is a data distribution whose noised marginals are known in closed
form under any schedule: if x0 ~ sum_k pi_k N(mu_k, diag(s_k^2)), then
    p_t(x) = sum_k pi_k N(x; alpha mu_k, diag(alpha^2 s_k^2 + sigma^2)),
so the exact score, and through it the exact eps / x0 / v / velocity predictor, is available
(the ideal network). Feeding it to a sampler isolates the sampler's own error. The stds are
either one per component (shape [K]: isotropic, the original code path, bit for bit) or one
per component and dimension (shape [K, D]: anisotropic, diagonal covariances).

:class:`ProductMixture` is a product of D independent 1-D Gaussian mixtures: M^D modes jointly
(2^32 in 32-D with two per coordinate), yet its noised marginal, score and denoiser factorise
per coordinate, so they stay exact and cheap. Both share the interface (``dim``, ``modes``,
``sample``, ``log_prob``, ``score``, ``x0_mean``, ``predictor``, ``moments``,
``null_distances``); :mod:`diffcore.testing.suite` holds a fixed suite of them.

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

F64 = torch.float64


class _Target:
    """What every exact target shares: given ``x0_mean`` (E[x0 | x_t]) and ``_log_components``,
    the predictor, the noised log-density, the moments of the marginal and the null distances."""

    dim: int

    def _coeffs(self, t: torch.Tensor, schedule: Schedule):
        t = t.detach().cpu().to(torch.float64)
        return schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]

    def log_prob(self, x: torch.Tensor, t=None, schedule: Schedule | str | None = None) -> torch.Tensor:
        """log p(x) of the data, or with ``t`` (float or [B]) and ``schedule``, log p_t(x) of
        the noised marginal, exact (differentiable in x)."""
        if t is None:
            return self._log_density(self._log_components(x.to(torch.float64), 1.0, 0.0))
        x64 = x.cpu().to(F64)
        a, s = self._coeffs(torch.as_tensor(t, dtype=F64).expand(x64.shape[0]), _schedules.get(schedule))
        return self._log_density(self._log_components(x64, a, s))

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

    def moments(self, alpha: float = 1.0, sigma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean [D] and covariance [D, D] of alpha x0 + sigma eps (of the data by default)."""
        m, c = self._data_moments()
        return alpha * m, alpha**2 * c + sigma**2 * torch.eye(self.dim, dtype=F64)

    # -------------------------------------------------------------- distances
    def null_distances(self, n: int, m: int | None = None, repeats: int = 20, seed: int = 0) -> torch.Tensor:
        """Energy distances between independent target samples of sizes n and m: the
        distance's sampling-noise distribution at these sizes."""
        g = torch.Generator().manual_seed(seed)
        m = m or n
        return torch.stack([energy_distance(self.sample(n, g), self.sample(m, g)) for _ in range(repeats)])


class GaussianMixture(_Target):
    """Gaussian mixture in ``dim`` dimensions (float64 throughout): isotropic components (stds of
    shape [K], or one float) or diagonal ones (stds of shape [K, D])."""

    def __init__(self, means: Sequence[Sequence[float]] | torch.Tensor, stds: Sequence[float] | float | torch.Tensor = 0.1, weights: Sequence[float] | None = None):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        k, self.dim = self.means.shape
        stds = torch.as_tensor(stds, dtype=torch.float64)
        self.diagonal = stds.dim() == 2
        if self.diagonal:
            if stds.shape != (k, self.dim):
                raise ValueError(f"stds of shape {tuple(stds.shape)}: expected [K] or [K, D] = [{k}, {self.dim}]")
            self.stds = stds.clone()
        else:
            self.stds = stds.expand(k).clone()
        self._sd = self.stds if self.diagonal else self.stds[:, None]  # [K, D] or [K, 1]
        w = torch.ones(k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.weights = w / w.sum()
        self.modes = k

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
        return self.means[k] + self._sd[k] * z

    def conditional(self, known: Sequence[int], values: Sequence[float] | torch.Tensor) -> "GaussianMixture":
        """The exact distribution of the other coordinates given x[known] = values: a mixture
        of the components' free coordinates (diagonal covariances: independent of the known
        ones) with weights pi_k N(values; mu_k[known], s_k[known]^2), what inpainting targets."""
        idx = torch.as_tensor(list(known), dtype=torch.long)
        free = torch.as_tensor([d for d in range(self.dim) if d not in set(idx.tolist())], dtype=torch.long)
        v = torch.as_tensor(values, dtype=torch.float64)
        sd = self._sd.expand(-1, self.dim)
        logw = torch.log(self.weights) + torch.distributions.Normal(self.means[:, idx], sd[:, idx]).log_prob(v).sum(-1)
        return GaussianMixture(self.means[:, free], sd[:, free], torch.softmax(logw, 0))

    def _data_moments(self):
        m = self.weights @ self.means
        second = (self.weights[:, None] * self._sd.expand(-1, self.dim) ** 2).sum(0)
        c = torch.diag(second) + (self.weights[:, None, None] * self.means[:, :, None] * self.means[:, None, :]).sum(0)
        return m, c - m[:, None] * m[None, :]

    # ------------------------------------------------------------- the marginals
    def _log_density(self, log_components):
        return log_components.logsumexp(dim=1)

    def _log_components(self, x, alpha, sigma):
        # alpha, sigma: floats or [B, 1] tensors
        a3 = alpha[..., None] if torch.is_tensor(alpha) else alpha
        if self.diagonal:
            s3 = sigma[..., None] if torch.is_tensor(sigma) else sigma
            var = a3**2 * self.stds**2 + s3**2  # [K, D] or [B, K, D]
            d2 = (x[:, None, :] - a3 * self.means[None]) ** 2
            return torch.log(self.weights) - 0.5 * (d2 / var).sum(-1) - 0.5 * torch.log(2 * math.pi * var).sum(-1)
        var = alpha**2 * self.stds**2 + sigma**2  # [K] or [B, K]
        d2 = ((x[:, None, :] - a3 * self.means[None]) ** 2).sum(-1)
        return torch.log(self.weights) - 0.5 * d2 / var - 0.5 * self.dim * torch.log(2 * math.pi * var)

    def _var(self, a, s):
        """alpha^2 s^2 + sigma^2 per component: [B, K, D] (diagonal) or [B, K, 1] (isotropic)."""
        if self.diagonal:
            return a[:, :, None] ** 2 * self.stds[None] ** 2 + s[:, :, None] ** 2
        return (a**2 * self.stds[None] ** 2 + s**2)[:, :, None]

    def score(self, x: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """grad log p_t(x), exact."""
        x64 = x.cpu().to(torch.float64)  # differentiable (likelihood needs d/dx)
        a, s = self._coeffs(t, schedule)
        var = self._var(a, s)
        r = torch.softmax(self._log_components(x64, a, s), dim=1)  # responsibilities
        diff = x64[:, None, :] - a[:, :, None] * self.means[None]  # [B, K, D]
        sc = -(r[:, :, None] * diff / var).sum(1)
        return sc.to(x)

    def x0_mean(self, x: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """E[x0 | x_t = x], exact (Tweedie: (x + sigma^2 score) / alpha; per component and
        dimension, mu + alpha s^2 / (alpha^2 s^2 + sigma^2) (x - alpha mu))."""
        x64 = x.cpu().to(torch.float64)  # differentiable (likelihood needs d/dx)
        a, s = self._coeffs(t, schedule)
        var = self._var(a, s)
        r = torch.softmax(self._log_components(x64, a, s), dim=1)
        gain = a[:, :, None] * self._sd[None] ** 2 / var  # [B, K, D] or [B, K, 1]
        comp = self.means[None] + gain * (x64[:, None, :] - a[:, :, None] * self.means[None])
        return (r[:, :, None] * comp).sum(1).to(x)


class ProductMixture(_Target):
    """Product of ``D`` independent 1-D Gaussian mixtures: ``means``, ``stds`` and ``weights``
    of shape [D, M] (stds may be one float; weights default to equal, normalised per row).
    M^D modes jointly; the score and denoiser factorise per coordinate."""

    def __init__(self, means: Sequence[Sequence[float]] | torch.Tensor, stds: float | torch.Tensor | Sequence = 0.1, weights=None):
        self.means = torch.as_tensor(means, dtype=F64)
        self.dim, m = self.means.shape
        self.stds = torch.as_tensor(stds, dtype=F64).expand(self.dim, m).clone()
        w = torch.ones(self.dim, m, dtype=F64) if weights is None else torch.as_tensor(weights, dtype=F64).expand(self.dim, m)
        self.weights = w / w.sum(1, keepdim=True)
        self.modes = m**self.dim

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator).T  # [n, D]
        z = torch.randn(n, self.dim, generator=generator, dtype=F64)
        return self.means.T.gather(0, k) + self.stds.T.gather(0, k) * z

    def _data_moments(self):
        m = (self.weights * self.means).sum(1)
        v = (self.weights * (self.stds**2 + self.means**2)).sum(1) - m**2
        return m, torch.diag(v)

    def _log_density(self, log_components):
        return log_components.logsumexp(dim=-1).sum(-1)

    def _a_var(self, a, s):  # a, s: floats or [B, 1] -> [D, M] or [B, 1, 1] -> [B, D, M]
        a3, s3 = (a[..., None] if torch.is_tensor(a) else a), (s[..., None] if torch.is_tensor(s) else s)
        return a3, a3**2 * self.stds**2 + s3**2

    def _log_components(self, x, alpha, sigma):  # [B, D, M]
        a3, var = self._a_var(alpha, sigma)
        d2 = (x[:, :, None] - a3 * self.means) ** 2
        return torch.log(self.weights) - 0.5 * d2 / var - 0.5 * torch.log(2 * math.pi * var)

    def score(self, x: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """grad log p_t(x), exact: per coordinate, the score of a 1-D mixture."""
        x64 = x.cpu().to(F64)
        a, s = self._coeffs(t, schedule)
        a3, var = self._a_var(a, s)
        r = torch.softmax(self._log_components(x64, a, s), dim=-1)
        return -(r * (x64[:, :, None] - a3 * self.means) / var).sum(-1).to(x)

    def x0_mean(self, x: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """E[x0 | x_t = x], exact, per coordinate (Tweedie)."""
        x64 = x.cpu().to(F64)
        a, s = self._coeffs(t, schedule)
        a3, var = self._a_var(a, s)
        r = torch.softmax(self._log_components(x64, a, s), dim=-1)
        comp = self.means + a3 * self.stds**2 / var * (x64[:, :, None] - a3 * self.means)
        return (r * comp).sum(-1).to(x)


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (V-statistic), >= 0, zero iff equal laws."""
    x = x.flatten(1).to(torch.float64)
    y = y.flatten(1).to(torch.float64)
    return 2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()
