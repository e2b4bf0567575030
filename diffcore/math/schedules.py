"""Noise schedules: the Gaussian path x_t = alpha(t) x0 + sigma(t) eps, t in [0, 1].

t = 0 is the data end, t = 1 the noise end. Every schedule answers ``alpha(t)``,
``sigma(t)`` and ``log_snr(t) = log(alpha^2 / sigma^2)``, and their time derivatives (which
the SDE view, the probability-flow ODE and the flow-velocity prediction need). Everything is
computed in float64 and cast by the caller ("cast at the edge").

Discrete schedules (DDPM's ``linear``, Nichol & Dhariwal's ``cosine``) also expose
``betas``, ``alphas_cumprod`` and ``num_steps`` (T). Step i in 1..T sits at t = i / T with
alpha(i/T)^2 = alphas_cumprod[i - 1]; between steps, log(alpha) is interpolated linearly
(and alpha(0) = 1), so continuous-time samplers run on discrete schedules too.

Continuous schedules follow Song et al. (2021): ``vp`` (beta_min 0.1, beta_max 20),
``subvp``, ``ve`` (geometric sigma from sigma_min 0.01 to sigma_max 50), and ``flow``, the
straight path of flow matching / rectified flow (alpha = 1 - t, sigma = t).

``t_min`` / ``t_max`` bound the times a model is trained on and queried at: the ends where
the path is singular (sigma = 0, or alpha = 0 for ``flow``) are left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

F64 = torch.float64


def _as_t(t) -> torch.Tensor:
    # as_tensor keeps a float64 tensor as is (and its autograd graph, for _grad below).
    return torch.as_tensor(t, dtype=F64)


class Schedule:
    """Base class. Subclasses define ``log_alpha(t)`` and ``sigma(t)`` (float64 tensors);
    derivatives default to autograd through those and can be overridden analytically."""

    name: str = "schedule"
    discrete: bool = False
    t_min: float = 0.0
    t_max: float = 1.0
    variance_preserving: bool = False

    # --- the path -----------------------------------------------------------------
    def log_alpha(self, t) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def sigma(self, t) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def alpha(self, t) -> torch.Tensor:
        return torch.exp(self.log_alpha(t))

    def log_snr(self, t) -> torch.Tensor:
        return 2.0 * (self.log_alpha(t) - torch.log(self.sigma(t)))

    # --- derivatives (d/dt) --------------------------------------------------------
    def _grad(self, fn: Callable, t) -> torch.Tensor:
        t = _as_t(t).clone().requires_grad_(True)
        with torch.enable_grad():
            y = fn(t)
            (g,) = torch.autograd.grad(y.sum(), t)
        return g.detach()

    def d_log_alpha(self, t) -> torch.Tensor:
        """f(t) = d log(alpha) / dt: the drift coefficient of the forward SDE."""
        return self._grad(self.log_alpha, t)

    def d_sigma(self, t) -> torch.Tensor:
        return self._grad(self.sigma, t)

    def d_alpha(self, t) -> torch.Tensor:
        return self.alpha(t) * self.d_log_alpha(t)

    @property
    def prior_std(self) -> float:
        """Standard deviation of the prior p(x_{t_max}) for standardised data,
        sqrt(alpha^2 + sigma^2) at t_max (about 1 for VP, sigma_max for VE)."""
        t = _as_t(self.t_max)
        return float(torch.sqrt(self.alpha(t) ** 2 + self.sigma(t) ** 2))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


# ----------------------------------------------------------------------------- discrete
class DiscreteSchedule(Schedule):
    """A DDPM chain of T steps given by its betas (Ho et al. 2020, eq. 4:
    q(x_t | x_0) = N(sqrt(alphas_cumprod_t) x_0, (1 - alphas_cumprod_t) I))."""

    discrete = True
    variance_preserving = True

    def __init__(self, betas: torch.Tensor, name: str):
        betas = _as_t(betas)
        if betas.ndim != 1 or len(betas) < 1:
            raise ValueError("betas must be a non-empty 1-D tensor")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must lie in (0, 1)")
        self.name = name
        self.betas = betas
        self.num_steps = len(betas)
        # cumprod in float64: float32 loses digits near t = 0 (diffusers' precision issue).
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.t_min = 1.0 / self.num_steps
        self.t_max = 1.0
        # log(alpha) at t = i / T for i = 0..T (alpha(0) = 1).
        self._log_alpha_grid = torch.cat([torch.zeros(1, dtype=F64), 0.5 * torch.log(self.alphas_cumprod)])

    def timestep(self, t) -> torch.Tensor:
        """The step index i in 0..T nearest to t = i / T (as a long tensor)."""
        return torch.round(_as_t(t) * self.num_steps).long().clamp(0, self.num_steps)

    def _interp(self, grid: torch.Tensor, t) -> torch.Tensor:
        u = _as_t(t).clamp(0.0, 1.0) * self.num_steps
        lo = torch.floor(u.detach()).long().clamp(0, self.num_steps - 1)
        w = u - lo.to(F64)
        return grid[lo] * (1.0 - w) + grid[lo + 1] * w

    def log_alpha(self, t) -> torch.Tensor:
        return self._interp(self._log_alpha_grid, t)

    def sigma(self, t) -> torch.Tensor:
        # sigma^2 = 1 - alpha^2, written with expm1 to keep digits where alpha is close to 1.
        return torch.sqrt(-torch.expm1(2.0 * self.log_alpha(t)))

    def d_log_alpha(self, t) -> torch.Tensor:
        # Slope of the segment ending at or after t: at a step t = i / T this is the segment
        # (i-1)/T .. i/T that a reverse-time step from t crosses.
        u = _as_t(t).clamp(0.0, 1.0) * self.num_steps
        lo = (torch.ceil(u) - 1).long().clamp(0, self.num_steps - 1)
        return (self._log_alpha_grid[lo + 1] - self._log_alpha_grid[lo]) * self.num_steps

    def d_sigma(self, t) -> torch.Tensor:
        # d sigma = -alpha^2 f / sigma   (from sigma^2 = 1 - alpha^2)
        a2 = torch.exp(2.0 * self.log_alpha(t))
        return -a2 * self.d_log_alpha(t) / self.sigma(t)


def linear(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> DiscreteSchedule:
    """DDPM's linear schedule (Ho et al. 2020, sec. 4): betas linear from 1e-4 to 0.02 over
    T = 1000 steps (rescaled by 1000 / T for other T, so the path stays the same)."""
    _check_steps(num_steps)
    scale = 1000.0 / num_steps
    if scale * beta_end >= 1:
        raise ValueError(
            f"the linear schedule with num_steps={num_steps} would need beta_end = {scale * beta_end:g} >= 1 "
            f"(betas are rescaled by 1000 / num_steps); use num_steps > {int(1000 * beta_end)}"
        )
    betas = torch.linspace(scale * beta_start, scale * beta_end, num_steps, dtype=F64)
    return DiscreteSchedule(betas, "linear")


def cosine(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> DiscreteSchedule:
    """Nichol & Dhariwal (2021), eq. 17: alpha_bar(t) = f(t) / f(0) with
    f(t) = cos^2(((t / T + s) / (1 + s)) pi / 2), betas = 1 - alpha_bar_t / alpha_bar_{t-1}
    clipped at 0.999 (the clip keeps the last steps finite)."""
    _check_steps(num_steps)

    def f(u):
        return torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    i = torch.arange(num_steps, dtype=F64)
    betas = 1.0 - f((i + 1) / num_steps) / f(i / num_steps)
    return DiscreteSchedule(betas.clamp(max=max_beta), "cosine")


def _check_steps(num_steps) -> None:
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")


# --------------------------------------------------------------------------- continuous
class VP(Schedule):
    """Variance-preserving SDE (Song et al. 2021, eq. 11): beta(t) = beta_min + t (beta_max -
    beta_min), alpha(t) = exp(-1/2 int_0^t beta), sigma^2 = 1 - alpha^2. The continuous
    limit of DDPM."""

    name = "vp"
    variance_preserving = True

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3):
        if not 0 < beta_min < beta_max:
            raise ValueError("need 0 < beta_min < beta_max")
        self.beta_min, self.beta_max, self.t_min = float(beta_min), float(beta_max), float(t_min)

    def beta(self, t) -> torch.Tensor:
        return self.beta_min + _as_t(t) * (self.beta_max - self.beta_min)

    def log_alpha(self, t) -> torch.Tensor:
        t = _as_t(t)
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def sigma(self, t) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(2.0 * self.log_alpha(t)))

    def d_log_alpha(self, t) -> torch.Tensor:
        return -0.5 * self.beta(t)

    def d_sigma(self, t) -> torch.Tensor:
        a2 = torch.exp(2.0 * self.log_alpha(t))
        return 0.5 * self.beta(t) * a2 / self.sigma(t)


class SubVP(VP):
    """sub-VP SDE (Song et al. 2021, eq. 13): the VP drift with sigma = 1 - alpha^2, whose
    variance stays below the VP one at every t."""

    name = "subvp"
    variance_preserving = False

    def sigma(self, t) -> torch.Tensor:
        return -torch.expm1(2.0 * self.log_alpha(t))

    def d_sigma(self, t) -> torch.Tensor:
        # d(1 - alpha^2)/dt = -2 alpha^2 f = beta alpha^2
        return self.beta(t) * torch.exp(2.0 * self.log_alpha(t))


class VE(Schedule):
    """Variance-exploding SDE (Song et al. 2021, eq. 9; SMLD's noise levels, Song & Ermon
    2019): alpha = 1, sigma(t) = sigma_min (sigma_max / sigma_min)^t."""

    name = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError("need 0 < sigma_min < sigma_max")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.t_min = 0.0

    def log_alpha(self, t) -> torch.Tensor:
        t = _as_t(t)
        return torch.zeros_like(t)

    def sigma(self, t) -> torch.Tensor:
        t = _as_t(t)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def d_log_alpha(self, t) -> torch.Tensor:
        return torch.zeros_like(_as_t(t))

    def d_sigma(self, t) -> torch.Tensor:
        return self.sigma(t) * math.log(self.sigma_max / self.sigma_min)


class Flow(Schedule):
    """The straight path of flow matching / rectified flow (Lipman et al. 2023; Liu et al.
    2023): x_t = (1 - t) x0 + t eps, whose velocity dx_t/dt = eps - x0."""

    name = "flow"

    def __init__(self, t_min: float = 1e-3, t_max: float = 1.0 - 1e-3):
        self.t_min, self.t_max = float(t_min), float(t_max)

    def log_alpha(self, t) -> torch.Tensor:
        t = _as_t(t)
        return torch.log1p(-t)

    def alpha(self, t) -> torch.Tensor:
        return 1.0 - _as_t(t)

    def sigma(self, t) -> torch.Tensor:
        t = _as_t(t)
        return t * 1.0

    def d_log_alpha(self, t) -> torch.Tensor:
        return -1.0 / (1.0 - _as_t(t))

    def d_alpha(self, t) -> torch.Tensor:
        return -torch.ones_like(_as_t(t))

    def d_sigma(self, t) -> torch.Tensor:
        return torch.ones_like(_as_t(t))


# ------------------------------------------------------------------------------ registry
_REGISTRY: dict[str, Callable[..., Schedule]] = {
    "linear": linear,
    "cosine": cosine,
    "vp": VP,
    "subvp": SubVP,
    "ve": VE,
    "flow": Flow,
}


def names() -> list[str]:
    """The registered schedule names."""
    return sorted(_REGISTRY)


def register(name: str, factory: Callable[..., Schedule], *, replace: bool = False) -> None:
    """Add a schedule factory under ``name`` (plugins do this through the
    ``diffcore_register_schedules`` hook)."""
    if name in _REGISTRY and not replace and _REGISTRY[name] is not factory:
        raise ValueError(f"a schedule named {name!r} is already registered")
    _REGISTRY[name] = factory


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def factory(name: str) -> Callable[..., Schedule]:
    """The factory registered under ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(names())}")
    return _REGISTRY[name]


def get(name: str | Schedule, **options) -> Schedule:
    """The schedule called ``name`` built with ``options`` (e.g. ``get("linear",
    num_steps=500)``). A :class:`Schedule` instance is returned as is."""
    if isinstance(name, Schedule):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(names())}")
    try:
        return _REGISTRY[name](**options)
    except TypeError as e:  # an option the factory does not take
        raise ValueError(f"bad option for schedule {name!r}: {e}") from None
