"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1), the SMLD sampler.

For each noise level (the model times ``ts``, noisiest first), ``steps_each`` steps of
Langevin dynamics
    y <- y + (a_i / 2) score(y) + sqrt(a_i) z,     a_i = step_size * (tau_i / tau_L)^2
where tau_L is the smallest level (the paper's eps = step_size). SMLD's noise levels are a VE
path, y = x0 + tau z; any Gaussian path is one after rescaling (Karras et al. 2022, sec. 2):
y = x / alpha, tau = sigma / alpha, score_y = alpha score_x = -eps_hat / tau. Running the chain
in y keeps the data's scale fixed across levels, so the chain only has to follow the shrinking
noise, as in the paper, whatever the schedule. The default levels are evenly spaced in log-SNR
(SMLD's geometric sigmas). The last move is the denoising step x <- x0_hat(x, t_L)
(Song & Ermon 2020; Jolicoeur-Martineau et al. 2021), which removes the remaining noise.
Model evaluations: N * steps_each + 1. With few levels (``adaptive``, the default) a level's
step grows until the chain contracts as fast as the levels shrink (see the code).

Langevin needs thousands of evaluations to be accurate. Without a Metropolis correction the
chain lags behind the shrinking levels: a step shrinks its distance to a level's mean by
1 - c/2 (a = c tau^2, c = 0.2), so 5 steps leave 0.9^10 = 35% of its excess variance over the
level and 20 steps 1.5%; where the modes separate (tau near their distance) a chain still too
wide splits its mass between them too evenly, and keeps that split. Hence 20 steps per level
(5 before); at 400 levels (8,001 evaluations) the kit's target is matched as well as by exact
DDIM over 16 seeds, and the kit is checked at 800 (docs/samplers.md; ``benchmarks/langevin_kit.py``).
"""

from __future__ import annotations

import math

from .table import Option, noise_source, sampler


@sampler(
    "langevin", evals="N steps_each + 1", nfe=lambda n, o: n * o["steps_each"] + 1, stochastic=True, min_steps=20,
    check_steps=800,  # 16,001 evaluations: the fewest levels tried that match exact DDIM over 16 seeds and pass the kit's own (benchmarks/langevin_kit.py)
    default_spacing="logsnr",  # noise levels evenly spaced in log-SNR: SMLD's geometric sigmas
    reference="Song & Ermon 2019, Algorithm 1, with the final denoising step",
    stepwise=False,  # the grid's times are noise levels; the run always ends with x0_hat
    options={
        "steps_each": Option(20, int, ge=1, description="Langevin steps per noise level (20 leave 1.5% of the chain's excess variance over a level; 5, the first default, left 35%)"),
        "step_size": Option(None, float, gt=0.0, nullable=True, description="the paper's eps (step at the smallest level); null: 0.2 tau_L^2"),
        "adaptive": Option(True, bool, description="grow a level's step until the chain keeps up with few, far-apart levels"),
    },
)
def sample_langevin(
    den, x, ts, *, generator=None, callback=None, noise_fn=None, steps_each: int = 20, step_size: float | None = None,
    adaptive: bool = True,
):
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) + final denoising."""
    noise = noise_source(noise_fn, generator)
    ts = ts[:-1]  # the noise levels; the chain ends with the denoising step x0_hat(x, t_L)
    n = len(ts)
    a_last, s_last = den.coef(ts[-1])
    tau_last = s_last / a_last
    if step_size is None:
        # a_L = 0.2 tau_L^2, the paper's ratio (eps = 2e-5 at sigma_L = 0.01): a_i = 0.2 tau_i^2
        step_size = 0.2 * tau_last**2
    y = x / den.coef(ts[0])[0]
    taus = [s / a for a, s in (den.coef(t) for t in ts)]
    for i, t in enumerate(ts):
        a_t, s_t = den.coef(t)
        tau = taus[i]
        step = step_size * (tau / tau_last) ** 2
        if i + 1 < n and adaptive:
            # Few, far-apart levels: a step a = c tau^2 pulls y towards the data by a factor
            # (1 - c/2) per step, so the chain's spread only shrinks as fast as the noise levels
            # if (1 - c/2)^steps_each <= tau_{i+1} / tau_i. Raise c to that (at most 1); with the
            # paper's dense levels this leaves c = 0.2 unchanged.
            c_needed = 2 * (1 - (taus[i + 1] / tau) ** (1 / steps_each))
            step = max(step, min(c_needed, 1.0) * tau**2)
        for _ in range(steps_each):
            x0, eps = den(a_t * y, t)
            y = y - (0.5 * step / tau) * eps + math.sqrt(step) * noise(y)
        if callback is not None:
            callback(i, n, a_t * y, x0)
    x0, _ = den(a_last * y, ts[-1])
    return x0

