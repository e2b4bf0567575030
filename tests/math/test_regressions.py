"""Regression tests for pitfalls from diffusers' scheduler history."""

import pytest
import torch

import diffcore
from diffcore import sampling, schedules
from diffcore.sampling import timesteps
from diffcore.testing import GaussianMixture, energy_distance

F64 = torch.float64


@pytest.mark.parametrize("steps", [1, 3, 7, 10, 50, 333, 999, 1000])
@pytest.mark.parametrize("spacing", ["linspace", "trailing", "leading", "logsnr", "shifted"])
def test_timestep_spacing_is_in_range_unique_and_descending(steps, spacing):
    s = schedules.get("linear")
    ts = timesteps(s, steps, spacing)
    idx = [round(t * 1000) for t in ts]
    assert len(idx) == steps and all(abs(t * 1000 - i) < 1e-9 for t, i in zip(ts, idx))
    assert idx == sorted(set(idx), reverse=True)  # no duplicates (diffusers' repeated last step)
    assert 1 <= idx[-1] and idx[0] <= 1000  # never step 0 or T + 1 (the off-by-one)
    if spacing in ("linspace", "trailing", "shifted") or steps == 1:
        assert idx[0] == 1000  # start from the noisiest step the model was trained on
    if spacing in ("linspace", "leading", "logsnr") and steps > 1:
        assert idx[-1] == 1  # and end on the least noisy one


def test_trailing_and_leading_match_their_definitions():
    s = schedules.get("linear")
    assert [round(t * 1000) for t in timesteps(s, 10, "trailing")] == list(range(1000, 0, -100))
    assert [round(t * 1000) for t in timesteps(s, 10, "leading")] == list(range(901, 0, -100))


@pytest.mark.parametrize("sampler", ["ddim", "euler", "heun", "dpm-solver++"])
@pytest.mark.parametrize("steps", [2, 5, 10, 25])
def test_cosine_near_zero_final_alpha_does_not_diverge_in_float32(sampler, steps):
    """cosine's alpha(1) ~ 5e-5 (beta clipped at 0.999) makes x / alpha ~ 2e4 on the first
    step; ODE samplers must stay finite and on the data's scale in float32."""
    gm = GaussianMixture.default()
    s = schedules.get("cosine")
    x = diffcore.generate(gm.predictor(s), torch.randn(2000, 2, generator=torch.Generator().manual_seed(0)), s,
                          sampler=sampler, steps=steps)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert float(x.abs().max()) < 3.0
    if steps >= 25:
        assert float(energy_distance(x, gm.sample(2000, torch.Generator().manual_seed(1)))) < 0.01


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_step_counts(bad):
    with pytest.raises(ValueError, match="steps"):
        diffcore.generate(lambda x, t: x, torch.randn(2, 2), "linear", sampler="ddim", steps=bad)


def test_more_steps_than_the_schedule_has():
    with pytest.raises(ValueError, match="more than the 1000 steps"):
        diffcore.generate(lambda x, t: x, torch.randn(2, 2), "linear", sampler="ddpm", steps=1001)
    with pytest.raises(ValueError, match="more than the 996 steps .of 1000; its last 4 lie below log-SNR"):
        timesteps(schedules.get("cosine"), 1000)
    with pytest.raises(ValueError, match="more than the 1000 steps"):
        diffcore.generate(lambda x, t: x, torch.randn(2, 2), "cosine", sampler="heun", steps=1001)


def test_every_step_of_the_schedule_is_honoured_with_a_note():
    """Asking for the schedule's own T steps is never refused: on cosine, whose last 4 steps
    lie below log-SNR -10.5, the plan runs the 996 usable ones and says so."""
    plan = sampling.SamplingPlan.make("cosine", "ddpm", 1000)
    assert plan.steps == 996 and len(plan.ts) == 997 and "996 usable steps" in plan.notes[0]
    with pytest.warns(UserWarning, match="996 usable"):
        diffcore.generate(lambda x, t: torch.zeros_like(x), torch.randn(2, 2), "cosine", sampler="ddim", steps=1000)
    assert sampling.SamplingPlan.make("linear", "ddpm", 1000).notes == ()


def test_unknown_spacing_and_leading_on_continuous():
    with pytest.raises(ValueError, match="valid"):
        timesteps(schedules.get("linear"), 10, "uniform")
    with pytest.raises(ValueError, match="discrete schedules only"):
        timesteps(schedules.get("vp"), 10, "leading")


def test_posterior_samplers_refuse_a_non_diffusion_path():
    """DDPM's posterior needs the SNR to decrease along the path; a schedule whose noise
    shrinks with t gets a clear error from the stochastic samplers."""

    class Shrinking(schedules.Schedule):
        name = "shrinking"
        t_min, t_max = 0.01, 1.0

        def log_alpha(self, t):
            return 0.0 * torch.as_tensor(t, dtype=F64)

        def sigma(self, t):
            return 2.0 - torch.as_tensor(t, dtype=F64)

    with pytest.raises(ValueError, match="does not decrease"):
        diffcore.generate(lambda x, t: x, torch.randn(2, 2), Shrinking(), sampler="ddpm", steps=4)


@pytest.mark.parametrize("sampler", ["ddim", "euler", "heun", "dpm-solver++", "ddpm"])
def test_cosine_with_an_imperfect_eps_model_stays_on_scale(sampler):
    """A learned eps model is never exact at cosine's last step (log-SNR -19.8), where x0 =
    (x - sigma eps) / alpha multiplies its error by 2e4. Sampling starts at log-SNR >= -10.5
    (step 996), so an eps error of 0.02 stays an error of the same order in the samples."""
    from diffcore.sampling.base import start_time

    s = schedules.get("cosine")
    assert start_time(s) == 0.996 and start_time(schedules.get("linear")) == 1.0
    gm = GaussianMixture.default()
    exact = gm.predictor(s)
    noisy = lambda x, t: exact(x, t) + 0.02 * torch.sin(5 * x + 1)  # noqa: E731
    x = diffcore.generate(noisy, torch.randn(2000, 2, generator=torch.Generator().manual_seed(0)), s,
                          sampler=sampler, steps=50 if sampler != "ddpm" else None)
    assert float(energy_distance(x, gm.sample(2000, torch.Generator().manual_seed(1)))) < 0.05


@pytest.mark.parametrize("steps", [4, 6, 8, 10, 25])
def test_leading_multistep_is_diffusers_multistep_grid(steps):
    """diffusers' DPMSolverMultistep / UniPCMultistep / DEISMultistep 'leading' grid: their
    0-based step k is our step k + 1."""
    diffusers = pytest.importorskip("diffusers")
    for cls in (diffusers.DPMSolverMultistepScheduler, diffusers.UniPCMultistepScheduler, diffusers.DEISMultistepScheduler):
        ref = cls(num_train_timesteps=1000, beta_schedule="linear", timestep_spacing="leading")
        ref.set_timesteps(steps)
        ours = [round(t * 1000) for t in timesteps(schedules.get("linear"), steps, "leading-multistep")]
        assert ours == [int(k) + 1 for k in ref.timesteps], cls.__name__
    with pytest.raises(ValueError, match="discrete schedules only"):
        timesteps(schedules.get("vp"), steps, "leading-multistep")
