"""The toy domain: points in the plane around four class centres."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch
from pydantic import Field

from diffcore.domain import Domain, Options
from diffcore.errors import UserError

CENTRES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])


class ToyOptions(Options):
    num: int = Field(256, ge=4, description="number of training points")
    spread: float = Field(0.1, gt=0, description="standard deviation around each centre")
    seed: int = Field(0, description="seed of the data set")
    fail_setup: bool = Field(False, description="raise a UserError in setup (tests)")


class ToySampleOptions(Options):
    scale: float = Field(1.0, gt=0, description="multiply the written points by this")
    tag: list[str] = Field(default_factory=list, description="tags added to the output file name")


class ToyDomain(Domain):
    name = "toy2d"
    Options = ToyOptions
    SampleOptions = ToySampleOptions

    def setup(self) -> None:
        if self.options.fail_setup:
            raise UserError("toy data: asked to fail (data.fail_setup=true)")
        g = torch.Generator().manual_seed(self.options.seed)
        y = torch.arange(self.options.num) % len(CENTRES)
        x = CENTRES[y] + self.options.spread * torch.randn(self.options.num, 2, generator=g)
        self.y, self.x = y, x
        # A statistic that sampling needs later without the data (tests domain_state.json).
        self.scale = float(x.abs().max())

    def train_dataset(self):
        return [{"x": self.x[i] / self.scale, "cond": self.y[i]} for i in range(len(self.x))]

    @property
    def labels(self):
        return ["east", "north", "west", "south"]

    def state_dict(self):
        return {"scale": self.scale}

    def load_state_dict(self, state):
        self.scale = float(state["scale"])

    def sample_batches(self, num, batch_size, classes=None, options=None):
        classes = list(classes) if classes else list(range(len(CENTRES)))
        labels = torch.tensor([classes[i % len(classes)] for i in range(num)])
        for start in range(0, num, batch_size):
            cond = labels[start : start + batch_size]
            yield {"shape": (len(cond), 2), "cond": cond}

    def write_samples(self, results, out_dir: Path, options=None):
        out_dir.mkdir(parents=True, exist_ok=True)
        opts = options
        scale = opts.scale if opts is not None else 1.0
        tags = "-".join(opts.tag) if opts is not None and opts.tag else ""
        path = out_dir / (f"samples-{tags}.csv" if tags else "samples.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["x", "y", "label"])
            for x, batch in results:
                for p, c in zip(x * self.scale * scale, batch["cond"]):
                    w.writerow([f"{float(p[0]):.5f}", f"{float(p[1]):.5f}", self.labels[int(c)]])
        return [path]

    def evaluate(self, sample_fn, num, out_dir, batch_size=64):
        dists, hits = [], 0
        for batch in self.sample_batches(num, batch_size):
            x = sample_fn(batch) * self.scale
            d = torch.cdist(x, CENTRES)
            dists.append(d.min(1).values)
            hits += int((d.argmin(1) == batch["cond"]).sum())
        return {"mean_dist": float(torch.cat(dists).mean()), "class_accuracy": hits / num, "finite": float(math.isfinite(float(torch.cat(dists).sum())))}


class OldFormToyDomain(ToyDomain):
    """The toy domain written against the contract's old signatures, before ``options`` and
    ``batch_size`` (tests of diffcore.contract.legacy; registered under the toy's own name by
    the old-form plugin of tests/platform/test_domain_contract.py)."""

    def write_samples(self, results, out_dir: Path):
        return super().write_samples(results, out_dir)

    def evaluate(self, sample_fn, num, out_dir):
        return super().evaluate(sample_fn, num, out_dir)
