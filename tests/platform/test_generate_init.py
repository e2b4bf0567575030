"""A sampling batch with ``init`` starts from the domain's first guess (SDEdit), and a domain with a
``period`` gets its samples wrapped onto the torus (runs.generate_batch)."""

import math

import torch

from diffcore import Domain
from diffcore.math.sampling import SamplingPlan
from diffcore.platform import runs


class Angles(Domain):
    name = "angles-test"
    period = 2 * math.pi

    def setup(self):
        pass

    def train_dataset(self):
        return []

    def sample_batches(self, num, batch_size, classes=None, options=None):
        return []

    def write_samples(self, results, out_dir, options=None):
        return []


def zero_net(x, t, cond=None):
    return torch.zeros_like(x)


def test_init_starts_from_the_first_guess_noised_to_the_strength():
    """With an eps-net that says 'no noise', DDIM keeps x_t0: the result is init + sigma_t0 z,
    within 5 sigma_t0 of the init, while from pure noise it is spread over the whole circle."""
    plan = SamplingPlan.make("ve", "ddim", 20, options={}, prediction="eps")
    n = 4000
    init = torch.full((n, 1), 2.0)
    g = torch.Generator().manual_seed(0)
    x = runs.generate_batch(zero_net, plan, Angles(), {"shape": (n, 1), "init": init, "strength": 0.1}, generator=g)
    t0 = plan.ts[len(plan.ts) - 1 - max(1, round(0.1 * 20))]
    s0 = float(plan.schedule.sigma(torch.tensor(t0)))
    assert s0 < 0.2
    dev = (x - init).abs()
    assert float(dev.max()) < 5 * s0 and float(dev.std()) > 0.3 * s0  # noised, then kept
    free = runs.generate_batch(zero_net, plan, Angles(), {"shape": (n, 1)}, generator=torch.Generator().manual_seed(0))
    assert float(free.std()) > 1.5  # from the prior: spread over the circle (uniform: std pi / sqrt(3) = 1.81)


def test_a_periodic_domain_gets_wrapped_samples():
    plan = SamplingPlan.make("ve", "ddim", 10, options={}, prediction="eps")
    x = runs.generate_batch(zero_net, plan, Angles(), {"shape": (3000, 2)}, generator=torch.Generator().manual_seed(1))
    assert float(x.min()) >= -math.pi and float(x.max()) < math.pi  # the VE prior (sigma 50) wrapped
    assert float(x.std()) > 1.5
