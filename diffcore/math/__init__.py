"""The mathematics of diffusion and flow models, in plain torch (and numpy): nothing here
imports pydantic, pluggy, Lightning, typer or yaml, so it is usable from a notebook with any
``nn.Module``.

- :mod:`.schedules`: the Gaussian paths (alpha, sigma, log-SNR), discrete and continuous;
- :mod:`.forward`: q(x_t | x_0), the posterior, the conversions between predictions;
- :mod:`.denoiser`: any prediction seen as (x0_hat, eps_hat), the path coefficients cached;
- :mod:`.sde`: the forward SDE, the reverse SDE, the probability-flow ODE;
- :mod:`.losses`, :mod:`.guidance`, :mod:`.likelihood`;
- :mod:`.sampling`: the sampler table, the time grid, the sampling plan and ``generate``.
"""

from . import denoiser, forward, guidance, likelihood, losses, sampling, schedules, sde  # noqa: F401
