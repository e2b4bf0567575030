"""A small MLP denoiser: x (2-D) + time embedding + label embedding."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from diffcore.domain import Options
from diffcore.nn import LabelEmbedding, timestep_embedding


class MLPOptions(Options):
    hidden: int = Field(32, ge=1, description="hidden width")
    drop_prob: float = Field(0.1, ge=0, lt=1, description="label dropout for guidance")


class MLP(nn.Module):
    def __init__(self, hidden: int, num_classes: int, drop_prob: float):
        super().__init__()
        self.temb = 16
        self.label = LabelEmbedding(num_classes, hidden, drop_prob)
        self.inp = nn.Linear(2 + self.temb, hidden)
        self.net = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, x, t, cond=None):
        h = self.inp(torch.cat([x, timestep_embedding(t, self.temb)], dim=1))
        return self.net(h + self.label(cond, x.shape[0], x.device))


def build(options: MLPOptions, domain) -> MLP:
    return MLP(options.hidden, len(domain.labels), options.drop_prob)
