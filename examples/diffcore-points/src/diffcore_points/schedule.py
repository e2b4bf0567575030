"""The sigmoid noise schedule (Jabri, Fleet & Chen 2023, "Scalable Adaptive Computation for
Iterative Generation", and Chen 2023, "On the Importance of Noise Scheduling for Diffusion
Models", Algorithm 1), registered as ``diffusion.schedule: sigmoid``.

A variance-preserving path whose alpha_bar = alpha^2 is a rescaled sigmoid:

    v(t)          = sigmoid((start + t (end - start)) / tau)
    alpha_bar(t)  = (v(1) - v(t)) / (v(1) - v(0)),     clipped to [clip_min, 1]
    sigma(t)^2    = 1 - alpha_bar(t) = (v(t) - v(0)) / (v(1) - v(0))

(the second form of sigma keeps its digits near t = 0). ``start``, ``end`` and ``tau`` shape
where the path spends its time: Chen (2023) uses start = -3, end = 3, tau = 1 (the default)
and finds larger tau better for larger images. Derivatives come from autograd (the default of
:class:`diffcore.schedules.Schedule`).
"""

from __future__ import annotations

import torch

from diffcore.schedules import Schedule

F64 = torch.float64


class SigmoidSchedule(Schedule):
    name = "sigmoid"
    variance_preserving = True

    def __init__(self, start: float = -3.0, end: float = 3.0, tau: float = 1.0, clip_min: float = 1e-9,
                 t_min: float = 1e-4, t_max: float = 1.0):
        if not start < end:
            raise ValueError(f"need start < end, got start={start}, end={end}")
        if not tau > 0:
            raise ValueError(f"need tau > 0, got {tau}")
        if not 0 < clip_min < 1:
            raise ValueError(f"need 0 < clip_min < 1, got {clip_min}")
        if not 0 < t_min < t_max <= 1:
            raise ValueError(f"need 0 < t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
        self.start, self.end, self.tau, self.clip_min = float(start), float(end), float(tau), float(clip_min)
        self.t_min, self.t_max = float(t_min), float(t_max)
        self._v0 = torch.sigmoid(torch.tensor(self.start / self.tau, dtype=F64))
        self._v1 = torch.sigmoid(torch.tensor(self.end / self.tau, dtype=F64))

    def _v(self, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=F64)
        return torch.sigmoid((self.start + t * (self.end - self.start)) / self.tau)

    def alpha_bar(self, t) -> torch.Tensor:
        return ((self._v1 - self._v(t)) / (self._v1 - self._v0)).clamp(self.clip_min, 1.0)

    def log_alpha(self, t) -> torch.Tensor:
        return 0.5 * torch.log(self.alpha_bar(t))

    def sigma(self, t) -> torch.Tensor:
        var = ((self._v(t) - self._v0) / (self._v1 - self._v0)).clamp(0.0, 1.0 - self.clip_min)
        return torch.sqrt(var)
