"""The platform's edit loop (diffcore.platform.editing.edit_run) on a 2-D domain whose network is
the exact denoiser of a Gaussian mixture: kept entries exact in every mode, SMC particles
expanded per sample and one returned, conditions carried, mistakes refused with a message."""

from types import SimpleNamespace

import pytest
import torch

from diffcore.contract.domain import Domain
from diffcore.contract.errors import UserError
from diffcore.math.sampling import SamplingPlan
from diffcore.platform import editing
from diffcore.testing.targets import GaussianMixture, energy_distance

GM = GaussianMixture.default()


class Plane(Domain):
    name = "plane"

    def setup(self):
        pass

    def train_dataset(self):
        return []

    def sample_batches(self, num, batch_size, classes=None, options=None):
        yield {"shape": (num, 2)}

    def write_samples(self, results, out_dir):
        return []


def _run(seen):
    model = GM.predictor("linear")

    def net(x, t, cond=None):
        seen.append(None if cond is None else tuple(cond.shape))
        return model(x.double(), t).to(x.dtype)

    return SimpleNamespace(device=torch.device("cpu"), domain=Plane(), net=net)


def _batches(points, num, cond=None, keep=(1.0, 0.0)):
    known = torch.tensor(points, dtype=torch.float32).repeat_interleave(num, 0)
    b = {"shape": tuple(known.shape), "known": known, "keep": torch.tensor(keep)}
    if cond is not None:
        b["cond"] = cond
    return [b]


def test_modes_keep_the_kept_part_and_particles_follow_the_conditional():
    seen = []
    run, plan = _run(seen), SamplingPlan.make("linear", "ddim", 50)
    for mode, kw in [("inpaint", {}), ("inpaint", {"resample": 2}), ("sdedit", {}), ("invert", {})]:
        (x, _), = editing.edit_run(run, plan, _batches([[0.0, 0.0]], 8), mode=mode, **kw)
        assert x.shape == (8, 2) and torch.equal(x[:, 0], torch.zeros(8)), mode
    # SMC through the platform: x = 0 keeps the top component (y ~ N(1, 0.2)), which replacement misses
    n = 300
    ref = GM.conditional([0], [0.0]).sample(n, torch.Generator().manual_seed(1))
    plan = SamplingPlan.make("linear", "ddpm", 400)
    (smc_x, _), = editing.edit_run(run, plan, _batches([[0.0, 0.0]], n, cond=torch.zeros(n, dtype=torch.long)), particles=8, seed=1)
    (rep_x, _), = editing.edit_run(run, plan, _batches([[0.0, 0.0]], n), seed=1)
    assert torch.equal(smc_x[:, 0], torch.zeros(n))
    assert (n * 8,) in seen  # the condition was repeated per particle
    d_smc, d_rep = energy_distance(smc_x[:, 1:].double(), ref), energy_distance(rep_x[:, 1:].double(), ref)
    assert d_smc < 0.2 * d_rep, (d_smc, d_rep)


def test_mistakes_are_refused():
    run, plan = _run([]), SamplingPlan.make("linear", "ddim", 10)
    with pytest.raises(UserError, match="needs a part to keep"):
        editing.edit_run(run, plan, _batches([[0.0, 0.0]], 2, keep=(0.0, 0.0)))
    with pytest.raises(UserError, match="must be binary"):
        editing.edit_run(run, plan, _batches([[0.0, 0.0]], 2, keep=(0.5, 0.0)))
    with pytest.raises(UserError, match="not finite"):
        editing.edit_run(run, plan, _batches([[float("nan"), 0.0]], 2))
    with pytest.raises(UserError, match="--particles"):
        editing.edit_run(run, plan, _batches([[0.0, 0.0]], 2), mode="sdedit", particles=4)
    with pytest.raises(UserError, match="not one tensor row per sample"):
        editing.edit_run(run, plan, _batches([[0.0, 0.0]], 2, cond={"graph": torch.zeros(5)}), particles=4)
