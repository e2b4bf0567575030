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
    _square_limits(ax, points if reference is None else np.concatenate([points, reference]))
    ax.set_title(title or f"{len(points)} samples", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _square_limits(ax, points: np.ndarray) -> None:
    """Equal axes around the central 99% of the finite points."""
    finite = points[np.isfinite(points).all(axis=1)]
    if len(finite):
        lo, hi = np.percentile(finite, [0.5, 99.5], axis=0)
        centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.1, 1e-3)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal")


def edit_png(
    inputs: np.ndarray,
    keep: np.ndarray,
    outputs: np.ndarray,
    source: np.ndarray,
    path: Path,
    *,
    reference: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """The before/after picture of ``diffcore edit``. Left, each input point and what is kept of
    it: a cross (both coordinates), a dashed line x = const or y = const (one), a hollow circle
    (nothing: the input is only where sampling starts). Right, the outputs over the same marks,
    coloured by their input (``source[i]``: the input of output i) when there are at most ten."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    firsts = np.unique(source, return_index=True)[1]  # one mark per input point
    alpha = float(np.clip(8 / len(firsts), 0.1, 0.8))
    for ax in axes:
        if reference is not None and len(reference):
            ax.scatter(reference[:, 0], reference[:, 1], s=3, c="0.85", linewidths=0)
        for j in firsts:
            (px, py), (kx, ky) = inputs[j], keep[j] > 0
            if kx and ky:
                ax.scatter([px], [py], s=40, marker="x", c="k", zorder=3)
            elif kx or ky:
                (ax.axvline if kx else ax.axhline)(px if kx else py, ls="--", lw=0.8, c="k", alpha=alpha)
            elif np.isfinite(inputs[j]).all():
                ax.scatter([px], [py], s=40, facecolors="none", edgecolors="k", zorder=3)
    groups = [source == s for s in np.unique(source)] if len(firsts) <= 10 else [np.ones(len(outputs), bool)]
    for sel in groups:
        axes[1].scatter(outputs[sel, 0], outputs[sel, 1], s=4, linewidths=0)
    axes[0].set_title("input (kept: cross x,y; dashed line x or y)", fontsize=9)
    axes[1].set_title(title or f"{len(outputs)} outputs", fontsize=9)
    ref = reference if reference is not None else np.zeros((0, 2))
    for ax in axes:
        _square_limits(ax, np.concatenate([outputs, ref, inputs[np.isfinite(inputs).all(axis=1)]]))
    fig.tight_layout()
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
