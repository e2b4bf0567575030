"""Sampling: one table of samplers (:mod:`.table`), the time grid (:mod:`.grid`), the sampling
plan and ``generate`` (:mod:`.plan`), and one file per sampler family, each citing the paper
it implements.

Built in: "ddpm", "ddim", "euler", "heun", "dpm-solver++", "dpm-solver++3m", their SDE
variants "dpm-solver++2m-sde" and "dpm-solver++3m-sde", "euler-maruyama",
"pc", "langevin" and the fast ODE solvers (:func:`names` lists them with the plugins' ones;
docs/samplers.md is generated from the table). Plugins add more through the
``diffcore_register_samplers`` hook.
"""

from . import ddim, ddpm, deis, dpm_solver, dpm_solver_3m, dpm_solver_sde, ipndm, langevin, ode, reverse_sde, unipc  # noqa: F401  (fill the table)
from ..denoiser import Denoiser, prior_scale
from .ddim import ddim_invert, slerp
from .edits import edit, invert
from .grid import CLEAN, MIN_LOG_SNR, SPACINGS, grid, start_time, timesteps, tuned_times
from .plan import DEFAULT_STEPS, SamplingPlan, generate
from .recommend import AUTO, family, recommend
from . import reverse_sde as sde  # noqa: F401  (its name before the move)
from .table import (
    Option, SamplerSpec, from_function, get, names, noise_source, randn_like, register, sampler, specs, unregister,
)

__all__ = [
    "AUTO", "CLEAN", "DEFAULT_STEPS", "Denoiser", "MIN_LOG_SNR", "Option", "SPACINGS", "SamplerSpec", "SamplingPlan", "ddim_invert", "edit", "family",
    "from_function", "generate", "get", "grid", "invert", "names", "noise_source", "prior_scale", "recommend", "register", "sampler", "slerp",
    "specs", "start_time", "timesteps", "tuned_times", "unregister",
]
