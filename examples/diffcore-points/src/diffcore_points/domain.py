"""The ``points`` domain: 2-D points, ``x`` of shape ``[2]`` per example, standardised.

Data: one of :data:`diffcore_points.data.DATASETS`, generated in :meth:`PointsDomain.setup`
(offline, deterministic). The points are standardised with the training set's mean and a
single scale (so the shape is kept); those statistics are the domain's ``state_dict`` and
turn generated points back into data units when they are written.

Condition: for labelled data sets (two moons, 8 Gaussians) ``cond`` is the class id (which
moon, which Gaussian); a backbone may ignore it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch.utils.data import Dataset

import diffcore
from diffcore.errors import UserError

from . import data as _data
from .editing import PointsEditOptions, keep_mask, read_points
from .writer import edit_png, points_csv, scatter_png

EVAL_REPEATS = 5  # null energy distances averaged for the floor


class PointsOptions(diffcore.Options):
    """The ``data:`` section of the points domain."""

    dataset: Literal["two-moons", "swiss-roll", "8-gaussians"] = Field(
        "two-moons", description="Which 2-D distribution: two-moons, swiss-roll or 8-gaussians."
    )
    num: int = Field(8192, ge=16, le=10_000_000, description="Number of training points.")
    noise: float | None = Field(
        None, ge=0, description="Std of the Gaussian noise added to each point, in data units; null: 0.05 (moons), 0.1 (swiss roll), 0.1 (8 Gaussians)."
    )
    seed: int = Field(0, description="Seed of the training points; fresh target points for the metric use other seeds.")


class PointsSampleOptions(diffcore.Options):
    """Extra options of ``diffcore sample`` for points (``--marker-size 2 --csv false``)."""

    marker_size: float = Field(4.0, gt=0, description="Marker size of the scatter plot.")
    csv: bool = Field(True, description="Also write the points as samples.csv.")
    reference: bool = Field(True, description="Draw the target distribution in light grey behind the samples.")


class PointSet(Dataset):
    """Items ``{"x": [2]}`` plus ``"cond"`` (class id) for labelled data."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"x": self.x[i]}
        if self.y is not None:
            item["cond"] = self.y[i]
        return item


class PointsDomain(diffcore.Domain):
    """2-D point clouds (see the module docstring)."""

    name = "points"
    Options = PointsOptions
    SampleOptions = PointsSampleOptions
    EditOptions = PointsEditOptions

    def __init__(self, options: BaseModel | None = None, *, workdir: Path | None = None):
        super().__init__(options, workdir=workdir)
        self._train: PointSet | None = None
        self.mean: list[float] | None = None  # standardisation, set by setup() or load_state_dict()
        self.scale: float | None = None

    # ---------------------------------------------------------------- data
    def target(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` points of the configured data set, in data units."""
        o = self.options
        return _data.generate(o.dataset, n, o.noise, seed)

    def setup(self) -> None:
        if self._train is not None:
            return
        x, y = self.target(self.options.num, self.options.seed)
        if not np.isfinite(x).all():
            raise UserError(f"data.noise={self.options.noise}: the generated points are not finite; use a smaller noise")
        self.mean = [float(v) for v in x.mean(axis=0)]
        self.scale = float(np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean() / 2)) or 1.0
        xt = torch.as_tensor(self.normalise(x), dtype=torch.float32)
        self._train = PointSet(xt, torch.as_tensor(y, dtype=torch.long) if y is not None else None)

    def train_dataset(self) -> Dataset:
        self.setup()
        return self._train

    @property
    def labels(self) -> list[str] | None:
        return _data.LABELS[self.options.dataset]

    def state_dict(self) -> dict[str, Any]:
        self._ensure_stats()
        return {"mean": self.mean, "scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = [float(v) for v in state["mean"]]
        self.scale = float(state["scale"])

    def _ensure_stats(self) -> None:
        if self.scale is None:
            self.setup()

    def normalise(self, x: np.ndarray) -> np.ndarray:
        return (x - np.asarray(self.mean)) / self.scale

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        return x * self.scale + np.asarray(self.mean)

    # ------------------------------------------------------------- sampling
    def sample_batches(
        self,
        num: int,
        batch_size: int,
        classes: Sequence[int] | None = None,
        options: BaseModel | None = None,
    ) -> Iterable[dict]:
        """Batches of ``shape (b, 2)``. For labelled data ``cond`` cycles through ``classes``
        (``--class``), or through every class, so that the samples cover the classes evenly,
        as the data do."""
        labels = self.labels
        ids = diffcore.cycle_classes(num, classes, len(labels) if labels else None)
        for start in range(0, num, batch_size):
            stop = min(num, start + batch_size)
            batch: dict[str, Any] = {"shape": (stop - start, 2)}
            if ids is not None:
                batch["cond"] = torch.tensor(ids[start:stop], dtype=torch.long)
                batch["labels"] = [labels[i] if labels and 0 <= i < len(labels) else str(i) for i in ids[start:stop]]
            yield batch

    def _collect(self, results: list[tuple[torch.Tensor, dict]]) -> tuple[np.ndarray, list[str] | None]:
        xs, labels = [], []
        for x, batch in results:
            xs.append(x.detach().double().cpu().numpy().reshape(len(x), 2))
            labels += list(batch.get("labels") or [])
        x = np.concatenate(xs) if xs else np.zeros((0, 2))
        return self.denormalise(x), (labels if len(labels) == len(x) and labels else None)

    def write_samples(self, results: list[tuple[torch.Tensor, dict]], out_dir: Path,
                      options: BaseModel | None = None) -> list[Path]:
        """``samples.png`` (a scatter plot over the target in grey) and ``samples.csv``, as the
        sample ``options`` say (``None``: the defaults)."""
        if not results:
            return []
        self._ensure_stats()
        opts = options or PointsSampleOptions()
        points, labels = self._collect(results)
        out_dir = Path(out_dir)
        reference = self.target(2000, self.options.seed)[0] if opts.reference else None
        name = self.options.dataset
        paths = [scatter_png(points, out_dir / "samples.png", labels=labels, reference=reference,
                             title=f"{len(points)} samples ({name})", marker_size=opts.marker_size)]
        if opts.csv:
            paths.append(points_csv(points, out_dir / "samples.csv", labels))
        return paths

    # -------------------------------------------------------------- editing
    def edit_batches(
        self,
        inputs: Sequence[str],
        num: int,
        batch_size: int,
        classes: Sequence[int] | None = None,
        options: BaseModel | None = None,
    ) -> Iterable[dict]:
        """``diffcore edit``: the points of every ``--input`` (:func:`editing.read_points`), each
        repeated ``num`` times. ``known`` is the point standardised (a coordinate not given: 0,
        the data mean), ``keep`` is 1 on the coordinates ``--keep`` keeps. The outputs cycle
        through ``--class`` when it is given; without it a class-conditional model gets no label
        (the null label), so the generated coordinates follow p(y | x) over all classes."""
        self._ensure_stats()
        keep_what = (options or PointsEditOptions()).keep
        points, names = [], []
        for spec in inputs:
            p = read_points(spec)
            points.append(p)
            names += [f"--input {spec}" + (f" (point {i + 1})" if len(p) > 1 else "") for i in range(len(p))]
        if not points:
            raise UserError("no --input: give a file of points (CSV x,y or .npy [n, 2]) or a point, e.g. --input 0.5,")
        points = np.concatenate(points)
        keep = keep_mask(points, keep_what, names)
        known = np.nan_to_num(self.normalise(points), nan=0.0)
        source = np.repeat(np.arange(len(points)), num)  # output i edits input point source[i]
        ids = diffcore.cycle_classes(len(source), classes, None) if classes else None
        labels = self.labels
        for start in range(0, len(source), batch_size):
            s = source[start : start + batch_size]
            batch: dict[str, Any] = {
                "shape": (len(s), 2), "source": s, "points": points[s],
                "known": torch.tensor(known[s], dtype=torch.float32), "keep": torch.tensor(keep[s], dtype=torch.float32),
            }
            if ids is not None:
                batch["cond"] = torch.tensor(ids[start : start + len(s)], dtype=torch.long)
                batch["labels"] = [labels[i] if labels and 0 <= i < len(labels) else str(i) for i in batch["cond"].tolist()]
            yield batch

    def write_edits(self, results: list[tuple[torch.Tensor, dict]], out_dir: Path) -> list[Path]:
        """As :meth:`write_samples` (``samples.png``; ``samples.csv``: ``num`` rows per input
        point, in input order), plus ``edit.png``: the inputs and what was kept of them, beside
        the outputs."""
        paths = self.write_samples(results, out_dir)
        if not results:
            return paths
        outputs, _ = self._collect(results)

        def cat(key: str) -> np.ndarray:
            return np.concatenate([np.asarray(b[key].cpu() if torch.is_tensor(b[key]) else b[key]) for _, b in results])

        keep = cat("keep")
        kinds = {" and ".join(d for d, k in zip("xy", row) if k) or "nothing" for row in keep > 0}
        paths.append(edit_png(cat("points"), keep, outputs, cat("source"), Path(out_dir) / "edit.png",
                              reference=self.target(2000, self.options.seed)[0],
                              title=f"{len(outputs)} outputs ({self.options.dataset}); kept: {', '.join(sorted(kinds))}"))
        return paths

    # -------------------------------------------------------------- metrics
    def evaluate(self, sample_fn: Callable[[dict], torch.Tensor], num: int, out_dir: Path,
                 batch_size: int = 2048) -> dict[str, float]:
        """Energy distance (Szekely & Rizzo 2013) between ``num`` samples (generated in batches
        of ``batch_size``) and ``num`` fresh target points (standardised units), beside its
        floor: the mean distance between two independent target sets of the same size. A
        perfect model scores about the floor; ``energy_distance_ratio`` = distance / floor."""
        self._ensure_stats()
        results = [(sample_fn(b).detach().cpu(), b) for b in self.sample_batches(num, batch_size)]
        gen = torch.cat([x for x, _ in results]).double().reshape(-1, 2)
        seed = self.options.seed

        def fresh(k: int) -> torch.Tensor:
            return torch.as_tensor(self.normalise(self.target(num, seed + 1000 + k)[0]))

        dist = float(diffcore.testing.energy_distance(gen, fresh(0)))
        null = float(np.mean([float(diffcore.testing.energy_distance(fresh(2 * k + 1), fresh(2 * k + 2))) for k in range(EVAL_REPEATS)]))
        if out_dir is not None:
            points, labels = self._collect(results)
            scatter_png(points, Path(out_dir) / "eval_samples.png", labels=labels,
                        reference=self.denormalise(fresh(0).numpy()), title=f"evaluate: {num} samples, energy distance {dist:.4f}")
        return {
            "energy_distance": dist,
            "energy_distance_null": null,
            "energy_distance_ratio": dist / null if null > 0 else float("inf"),
            "finite_fraction": float(torch.isfinite(gen).all(dim=1).double().mean()),
        }
