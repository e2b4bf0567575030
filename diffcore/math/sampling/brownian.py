"""A seeded Brownian motion that every step grid samples alike: the virtual Brownian tree
(Li, Wong, Chen & Duvenaud 2020, "Scalable Gradients for Stochastic Differential Equations",
sec. 4; torchsde's ``BrownianTree``, which k-diffusion's ``BrownianTreeNoiseSampler`` wraps).

W lives on [t0, t1] with W(t0) = 0 and W(t1) = sqrt(t1 - t0) z_root. W(t) is found by
bisection: on an interval [a, b] whose ends are known, the split point m gets the Brownian
bridge value

    W(m) = W(a) + (m - a) / (b - a) (W(b) - W(a)) + sqrt((m - a)(b - m) / (b - a)) z_node,

z_node standard normal, drawn from a generator seeded by (seed, node). So W(t) is a function
of the seed and t alone, whatever other times were asked and in which order: the increment a
sampler adds on a step t -> s is the same piece of one path however the grid is cut, and the
increments over [a, b] and [b, c] sum to the one over [a, c] exactly. After ``depth`` levels
W is linear inside the leaf (torchsde stops at a tolerance likewise); ``depth`` is set so the
leaf is below ``tol`` (in log t with ``geometric``), far below any step: the default 1e-4
leaves out at most 1e-4 / (4 h) of the variance of a step of h in log t (about 0.1 % for the
1000-step grid of a VP schedule, h ~ 0.02), and each query draws at most 20 new nodes, not 30
as with 1e-7.

``geometric=True`` (0 < t0) splits at the geometric mean sqrt(a b) instead of the midpoint:
the leaves are then evenly fine in log t, which a time like the SNR, spanning many decades,
needs; the bridge law above holds at any split point.

The node normals: by default i.i.d. N(0, 1) from per-node seeded generators (grid-invariant).
``draw`` replaces them, e.g. by a domain's noise (:func:`brownian_noise`): a domain's noise
space (zero centre of mass, masked padding) is a linear subspace, and W, a linear combination
of the node normals, then stays in it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import torch

_MASK = (1 << 64) - 1


def node_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for one node from the tree's seed (splitmix64's mixer, Steele et al. 2014)."""
    h = seed & _MASK
    for k in key:
        h = (h + 0x9E3779B97F4A7C15 + (k & _MASK)) & _MASK
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK
        h ^= h >> 31
    return h & ((1 << 63) - 1)


class BrownianTree:
    """W(t) on [t0, t1], shaped like ``like`` (on its device, in float64 where the device has it)."""

    def __init__(self, like: torch.Tensor, seed: int, t0: float, t1: float, *, geometric: bool = False,
                 tol: float = 1e-4, draw: Callable[[tuple], torch.Tensor] | None = None):
        if not t0 < t1 or (geometric and not t0 > 0):
            raise ValueError(f"a Brownian tree needs t0 < t1 (and t0 > 0 when geometric), got [{t0}, {t1}]")
        self.t0, self.t1, self.geometric, self.seed = float(t0), float(t1), geometric, int(seed)
        self.shape, self.device = tuple(like.shape), like.device
        self.dtype = torch.float32 if like.device.type == "mps" else torch.float64
        span = math.log(t1 / t0) if geometric else t1 - t0
        self.depth = max(1, math.ceil(math.log2(span / tol)))
        self._draw = draw or self._seeded
        self._cache: OrderedDict = OrderedDict()  # node -> W there: the last query's path
        self._last: dict = {}  # the last two queries
        self._w1 = math.sqrt(self.t1 - self.t0) * self._draw((-1, 0))

    def _seeded(self, key: tuple) -> torch.Tensor:
        g = torch.Generator(device=self.device).manual_seed(node_seed(self.seed, *key))
        # drawn in float32 (five times faster than float64 on CPU), summed in float64
        return torch.randn(self.shape, generator=g, device=self.device, dtype=torch.float32).to(self.dtype)

    def _split(self, a: float, b: float) -> float:
        return math.sqrt(a * b) if self.geometric else 0.5 * (a + b)

    def _node(self, key: tuple, a: float, m: float, b: float, wa, wb) -> torch.Tensor:
        w = self._cache.get(key)
        if w is None:
            bridge = (m - a) / (b - a) * (wb - wa) if wa is not None else (m - a) / (b - a) * wb
            w = bridge + math.sqrt((m - a) * (b - m) / (b - a)) * self._draw(key)
            if wa is not None:
                w = w + wa
            self._cache[key] = w
            # Samplers query forward in time: a query needs only nodes of the previous query's path
            # (its shared prefix), all of which the last depth + 2 touched hold (least recently
            # used go first). Any other order stays exact without a noise function: a node drawn
            # again from its own seed is the same.
            while len(self._cache) > self.depth + 2:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return w

    def __call__(self, t: float) -> torch.Tensor:
        """W(t); W(t0) = 0."""
        t = float(t)
        w = self._last.pop(t, None)  # a sampler asks for each step's end again as the next step's start
        w = self._query(t) if w is None else w
        self._last[t] = w
        if len(self._last) > 2:
            del self._last[next(iter(self._last))]
        return w

    def _query(self, t: float) -> torch.Tensor:
        t = min(max(t, self.t0), self.t1) if math.isclose(t, self.t0) or math.isclose(t, self.t1) else t
        if not self.t0 <= t <= self.t1:
            raise ValueError(f"time {t} is outside the Brownian tree's [{self.t0}, {self.t1}]")
        if t == self.t0:
            return torch.zeros(self.shape, device=self.device, dtype=self.dtype)
        a, b, wa, wb, index = self.t0, self.t1, None, self._w1, 0  # wa None: W(t0) = 0
        for level in range(self.depth):
            if t == b:
                return wb
            m = self._split(a, b)
            wm = self._node((level, index), a, m, b, wa, wb)
            if t == m:
                return wm
            if t < m:
                b, wb, index = m, wm, 2 * index
            else:
                a, wa, index = m, wm, 2 * index + 1
        if t == b:
            return wb
        lin = (t - a) / (b - a) * (wb - wa) if wa is not None else (t - a) / (b - a) * wb
        return lin + wa if wa is not None else lin

    def increment(self, t: float, s: float) -> torch.Tensor:
        """The normalised increment (W(s) - W(t)) / sqrt(|s - t|): N(0, 1), and independent
        across the steps of any grid."""
        w_t = self(t)
        return (self(s) - w_t) / math.sqrt(abs(s - t))


# The sampler's tree spans log-SNR in [-LOG_SNR_SPAN, LOG_SNR_SPAN], fixed so that every grid
# of a run, fine or coarse, cuts the same tree (the span must not depend on the grid).
LOG_SNR_SPAN = 50.0


def brownian_noise(like: torch.Tensor, eta: float, *, generator: torch.Generator | None = None,
                   noise_fn: Callable | None = None, seed: int | None = None) -> Callable[[float, float], torch.Tensor]:
    """The noise of an SDE step from half-log-SNR lam_t to lam_s > lam_t, as ``z(lam_t, lam_s)``:
    the normalised increment of one Brownian path in the time tau = exp(2 eta lambda) = SNR^eta.

    Why that time: the noise DPM-Solver++'s SDE adds on a step is
    sigma_s e^{-eta lam_s} int sqrt(2 eta) e^{eta lam} dW_lam, whose variance accrues as
    d(e^{2 eta lam}); in tau it is exactly sigma_s sqrt(1 - e^{-2 eta h}) (B(tau_s) - B(tau_t)) /
    sqrt(tau_s - tau_t), one Brownian motion B for every grid: N steps and 2N steps of one seed
    see the same path (k-diffusion's tree runs in sigma instead, which is a valid N(0, 1) per
    step but couples the grids less tightly).

    The seed comes from ``generator`` (or ``seed``). With a domain's ``noise_fn`` the node
    normals are drawn through it, in the order the nodes are first visited: the noise stays in
    the domain's space (its projections are linear) and is reproducible for a seed and grid,
    but a different grid takes the stream's draws in another order, so the path is the same
    across grids only without ``noise_fn`` (plain Gaussian noise)."""
    if seed is None:
        dev = generator.device if generator is not None else "cpu"
        seed = int(torch.randint(0, 2**62, (), generator=generator, device=dev))
    draw = None
    if noise_fn is not None:
        draw = lambda key: noise_fn(like).to(torch.float32 if like.device.type == "mps" else torch.float64)  # noqa: E731
    lo, hi = math.exp(-LOG_SNR_SPAN * eta), math.exp(LOG_SNR_SPAN * eta)
    tree = BrownianTree(like, seed, lo, hi, geometric=True, draw=draw)

    def z(lam_t: float, lam_s: float) -> torch.Tensor:
        if not max(abs(lam_t), abs(lam_s)) <= LOG_SNR_SPAN / 2:
            raise ValueError(f"log-SNR {2 * lam_t:.3g} -> {2 * lam_s:.3g} is outside the Brownian tree's "
                             f"[-{LOG_SNR_SPAN}, {LOG_SNR_SPAN}]: use noise='iid'")
        return tree.increment(math.exp(2 * eta * lam_t), math.exp(2 * eta * lam_s)).to(like.dtype)

    return z
