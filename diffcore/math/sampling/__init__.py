"""Samplers, one calling convention (see :mod:`diffcore.sampling.base`).

Built in: "ddpm", "ddim", "euler", "heun", "dpm-solver++", "dpm-solver++3m", "euler-maruyama",
"pc", "langevin". Plugins add more through the ``diffcore_register_samplers`` hook.
"""

from . import ddim, ddpm, dpm_solver, dpm_solver_3m, langevin, ode, reverse_sde  # noqa: F401  (registers the samplers)
from .base import Denoiser, generate, get, names, noise_source, register, slerp, timesteps, unregister
from .ddim import ddim_invert

__all__ = ["Denoiser", "generate", "get", "names", "noise_source", "register", "unregister", "slerp", "timesteps", "ddim_invert"]
