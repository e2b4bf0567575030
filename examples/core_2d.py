"""Train a tiny diffusion model on a 2-D target with the core alone (no CLI, no Lightning).

    python examples/core_2d.py --steps 2000 --out core_2d.png

Trains an MLP eps-predictor on a three-component Gaussian mixture, samples it with DDIM and
DPM-Solver++, prints the energy distance to the target beside the distance between two
independent target sets (the sampling-noise floor), and writes a scatter plot.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import diffcore
from diffcore.testing import GaussianMixture, energy_distance


class MLP(nn.Module):
    """eps(x_t, t): the sinusoidal time embedding of DDPM, concatenated to x_t."""

    def __init__(self, dim: int = 2, width: int = 256):
        super().__init__()
        self.time = diffcore.nn.TimeEmbedding(64, width)
        self.net = nn.Sequential(nn.Linear(dim + width, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, width), nn.SiLU(), nn.Linear(width, dim))

    def forward(self, x, t, cond=None):
        return self.net(torch.cat([x, self.time(t)], dim=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="training steps")
    p.add_argument("--schedule", default="cosine", help=f"one of {diffcore.schedules.names()}")
    p.add_argument("--prediction", default="eps", help="eps, x0, v, score or velocity")
    p.add_argument("--num", type=int, default=2000, help="samples to draw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="core_2d.png", help="scatter plot to write ('' for none)")
    a = p.parse_args()

    torch.manual_seed(a.seed)
    gm = GaussianMixture.default()
    schedule = diffcore.schedules.get(a.schedule)
    model = MLP()
    loss_fn = diffcore.DiffusionLoss(schedule, a.prediction)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.steps)
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    for step in range(1, a.steps + 1):
        loss = loss_fn(model, gm.sample(512, g).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0 or step == a.steps:
            print(f"step {step:5d}  loss {loss.item():.4f}  ({time.time() - t0:.0f} s)")

    model.eval()
    target = gm.sample(a.num, g)
    floor = gm.null_distances(a.num, repeats=10).mean()
    results = {}
    for sampler, steps in [("ddim", 50), ("dpm-solver++", 20), ("heun", 25)]:
        x = diffcore.generate(model, torch.randn(a.num, 2, generator=g), schedule, sampler=sampler, steps=steps,
                              prediction=a.prediction)
        results[sampler] = x
        print(f"{sampler:>13} {steps:3d} steps: energy distance {energy_distance(x, target):.4f} "
              f"(target vs target: {floor:.4f}; noise vs target: {energy_distance(torch.randn(a.num, 2), target):.4f})")
    if a.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(results) + 1, figsize=(4 * (len(results) + 1), 4), sharex=True, sharey=True)
        axes[0].scatter(*target.T, s=2, c="k")
        axes[0].set_title("target")
        for ax, (name, x) in zip(axes[1:], results.items()):
            ax.scatter(*x.T, s=2)
            ax.set_title(name)
        fig.tight_layout()
        fig.savefig(a.out, dpi=80)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
