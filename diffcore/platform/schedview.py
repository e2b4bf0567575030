"""Looking at noise schedules side by side (``diffcore schedule``).

Nichol & Dhariwal (2021, sec. 3.2 and fig. 3) observed that DDPM's linear schedule destroys
the signal too fast: the last part of its chain is spent at almost pure noise, which adds
little to sample quality; their cosine schedule spreads the noise levels more evenly. The
table printed here makes that visible: where each schedule's alpha_bar = alpha(t)^2 and
log-SNR pass given levels, and which share of its steps lie at log-SNR < -5.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..math import schedules as _schedules
from ..contract.errors import UserError

NOISE_FLOOR = -5.0  # log-SNR below which a step sees (almost) only noise


def _get(name: str) -> _schedules.Schedule:
    try:
        return _schedules.get(name)
    except ValueError as e:
        raise UserError(str(e)) from None


def grid(s: _schedules.Schedule, steps: int | None) -> torch.Tensor:
    """The step times: i / T for a discrete schedule with its own T, else ``steps`` times
    evenly spaced over [t_min, t_max] (float64)."""
    if steps is None and s.discrete:
        return torch.arange(1, s.num_steps + 1, dtype=torch.float64) / s.num_steps
    n = steps or 1000
    return torch.linspace(max(s.t_min, 1.0 / n), s.t_max, n, dtype=torch.float64)


def _first_below(ts: torch.Tensor, values: torch.Tensor, level: float) -> str:
    below = (values < level).nonzero()
    if len(below) == 0:
        return "never"
    i = int(below[0])
    return f"t={float(ts[i]):.3f} ({i + 1})"


def crossings(names: list[str], steps: int | None, alpha_bar_levels: list[float], log_snr_levels: list[float]) -> str:
    """The table: for each schedule, the first step time (and step number) where
    alpha_bar falls below each level and log-SNR below each level, and the share of
    steps with log-SNR < -5."""
    head = ["schedule", "steps"] + [f"alpha_bar<{a:g}" for a in alpha_bar_levels] + [f"logSNR<{v:g}" for v in log_snr_levels] + [f"share logSNR<{NOISE_FLOOR:g}"]
    rows = [head]
    for name in names:
        s = _get(name)
        ts = grid(s, steps)
        ab = s.alpha(ts) ** 2
        ls = s.log_snr(ts)
        share = float((ls < NOISE_FLOOR).double().mean())
        rows.append([name, str(len(ts))] + [_first_below(ts, ab, a) for a in alpha_bar_levels] + [_first_below(ts, ls, v) for v in log_snr_levels] + [f"{100 * share:.1f}%"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    note = "alpha_bar = alpha(t)^2, log-SNR = log(alpha^2 / sigma^2); t = 1 is noise. Cells: first t below the level (step number)."
    return "\n".join([note] + lines)


def plot(names: list[str], path: Path) -> None:
    """alpha_bar(t) and log-SNR(t) of each schedule, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name in names:
        s = _get(name)
        ts = grid(s, 1000)
        ax1.plot(ts.numpy(), (s.alpha(ts) ** 2).numpy(), label=name)
        ax2.plot(ts.numpy(), s.log_snr(ts).clamp(-20, 20).numpy(), label=name)
    ax1.set(xlabel="t", ylabel="alpha_bar = alpha(t)^2", title="signal fraction")
    ax2.axhline(NOISE_FLOOR, color="gray", ls="--", lw=0.8)
    ax2.set(xlabel="t", ylabel="log-SNR (clipped to [-20, 20])", title="log signal-to-noise ratio")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=120)
    except (OSError, ValueError) as e:
        raise UserError(f"--plot {path}: cannot write the plot ({e})") from None
    finally:
        plt.close(fig)
