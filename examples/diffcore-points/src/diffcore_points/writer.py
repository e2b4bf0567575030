"""Scatter plots of 2-D points (matplotlib's Agg canvas: no display, no global backend switch)
and a CSV of the points."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def scatter_png(
    points: np.ndarray,
    path: Path,
    *,
    labels: Sequence[str] | None = None,
    reference: np.ndarray | None = None,
    title: str = "",
    marker_size: float = 4.0,
) -> Path:
    """Write ``points [n, 2]`` as a square scatter plot; ``labels`` colour the points by class,
    ``reference`` (e.g. the training data) is drawn in light grey behind them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if reference is not None and len(reference):
        ax.scatter(reference[:, 0], reference[:, 1], s=marker_size, c="0.85", linewidths=0, label="data")
    if labels is not None and len(set(labels)) > 1:
        names = sorted(set(labels), key=list(labels).index)
        for name in names:
            sel = np.array([lb == name for lb in labels])
            ax.scatter(points[sel, 0], points[sel, 1], s=marker_size, linewidths=0, label=str(name))
        ax.legend(loc="upper right", fontsize=7, markerscale=2, frameon=False)
    else:
        ax.scatter(points[:, 0], points[:, 1], s=marker_size, c="tab:blue", linewidths=0)
    everything = points if reference is None else np.concatenate([points, reference])
    finite = everything[np.isfinite(everything).all(axis=1)]
    if len(finite):
        lo, hi = np.percentile(finite, [0.5, 99.5], axis=0)
        centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.1, 1e-3)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal")
    ax.set_title(title or f"{len(points)} samples", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def points_csv(points: np.ndarray, path: Path, labels: Sequence[str] | None = None) -> Path:
    """``x,y[,label]`` per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x", "y"] + (["label"] if labels is not None else []))
        for i, p in enumerate(points):
            w.writerow([f"{p[0]:.6f}", f"{p[1]:.6f}"] + ([labels[i]] if labels is not None else []))
    return path
