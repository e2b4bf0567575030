"""Classifier-free guidance (Ho & Salimans 2022), as a wrapper around any model.

    out = u + w (c - u),   c = net(x, t, cond),   u = net(x, t, None)

w = 1 is the plain conditional model, w = 0 the unconditional one, w > 1 sharpens the
condition (the paper's guidance strength is w - 1). The result has the same calling convention
as any model, so every sampler works with it. Guiding the eps / v / x0 / score / velocity
output is the same linear combination for all of them (each is affine in eps at fixed x_t).
"""

from __future__ import annotations

from collections.abc import Callable


def classifier_free(net: Callable, cond, scale: float) -> Callable:
    """``model(x_t, t)`` guided towards ``cond`` with scale ``w`` (see the module docstring)."""
    if cond is None or scale == 1.0:
        return lambda x, t: net(x, t, cond)

    def guided(x, t):
        c = net(x, t, cond)
        u = net(x, t, None)
        return u + scale * (c - u)

    return guided
