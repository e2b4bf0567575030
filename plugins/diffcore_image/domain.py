"""The ``image`` domain: tensors ``[B, C, H, W]`` in [-1, 1], class labels as conditions.

Data come from :mod:`diffcore_image.data` (the embedded digits, or ``data.path``) or
:mod:`diffcore_image.shapes` (``data.dataset: shapes64``), samples
are written by :mod:`diffcore_image.writer`, metrics computed by :mod:`diffcore_image.metrics`,
edits (``diffcore edit``: inputs, masks, the before/after picture) by :mod:`diffcore_image.edit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from diffcore import Domain, Options, UserError, cycle_classes

from . import data as _data
from . import edit as _edit
from . import shapes as _shapes
from . import stream as _stream
from .metrics import FEATURES, MetricModel, ShapesMetricModel, image_metrics, shapes_metrics
from .writer import GRID_NAME, grid_columns, write_grid, write_images


class ImageOptions(Options):
    """The ``data:`` section of the image domain."""

    path: str | None = Field(
        None,
        description="Folder of PNG/JPEG images to train on (one class per subfolder, if any); null: the embedded data set, data.dataset.",
    )
    dataset: Literal["digits", "shapes64"] = Field(
        "digits",
        description="The embedded data set when data.path is null: digits (scikit-learn's, grayscale, 16x16) or shapes64 "
        "(6,000 synthesized 64x64 RGB renders, 24 classes such as red-circle; implies resolution 64 and channels 3).",
    )
    resolution: int = Field(16, ge=4, le=1024, description="Images are resized to resolution x resolution pixels.")
    channels: Literal[1, 3] | None = Field(
        None, description="1 (grayscale) or 3 (RGB); null: 1 for digits, for a folder 3 if any image is in colour."
    )
    hflip: bool = Field(False, description="Random horizontal flips while training (off for digits: a flipped digit is wrong).")
    val_fraction: float = Field(0.2, ge=0, lt=1, description="Fraction held out (stratified by class) for `diffcore evaluate`.")
    split_seed: int = Field(0, description="Seed of the train / held-out split (fixed, so every run holds out the same images).")
    stream: bool | Literal["auto"] = Field(
        "auto",
        description="data.path: true decodes images from disk per item while training (with training.num_workers processes); "
        "false reads the folder into memory first; auto streams folders of more than 20,000 images or 1 GiB in memory.",
    )

    @property
    def shapes64(self) -> bool:
        """The embedded shapes64 set (the validator below refuses it together with a path)."""
        return self.path is None and self.dataset == "shapes64"

    @model_validator(mode="after")
    def _shapes64(self) -> "ImageOptions":
        """shapes64 is rendered at 64x64 in colour: an unset resolution becomes 64, a contradiction is refused."""
        if self.dataset != "shapes64":
            return self

        def refuse(msg: str) -> PydanticCustomError:  # the message as it is, without "Value error, "
            return PydanticCustomError("shapes64", msg.replace("{", "{{").replace("}", "}}"))

        if self.path is not None:
            raise refuse("dataset shapes64 is embedded and path is a folder; set one of them (data.path=null, or data.dataset=digits)")
        if "resolution" not in self.model_fields_set:
            self.resolution = _shapes.RESOLUTION
        elif self.resolution != _shapes.RESOLUTION:
            raise refuse(f"dataset shapes64 is rendered at 64x64, not resolution {self.resolution}; "
                         "set data.resolution=64 (or leave it out)")
        if self.channels == 1:
            raise refuse("dataset shapes64 is in colour, not channels 1; set data.channels=3 (or leave it out)")
        return self


class ImageDomain(Domain):
    """Images in [-1, 1], ``[C, H, W]`` per example; ``cond`` is the class id if labelled."""

    name = "image"
    Options = ImageOptions
    EditOptions = _edit.ImageEditOptions

    def __init__(self, options: BaseModel | None = None, *, workdir: Path | None = None):
        super().__init__(options, workdir=workdir)
        o = self.options
        self._train: _data.ImageSet | None = None
        self._val: _data.ImageSet | None = None
        self._streams: tuple[_stream.ImageFolderStream, _stream.ImageFolderStream] | None = None  # a streamed folder
        # Known without loading anything for the embedded sets; set by setup() or load_state_dict() otherwise.
        shapes = o.shapes64
        self._labels: list[str] | None = (list(_shapes.LABELS) if shapes else list(_data.DIGIT_LABELS)) if o.path is None else None
        self._channels: int | None = (3 if shapes else 1) if o.path is None else o.channels
        self._known = o.path is None

    # ---------------------------------------------------------------- data
    def setup(self) -> None:
        if self._train is not None or self._streams is not None:
            return
        o = self.options
        if o.shapes64:
            x, y = _shapes.render_shapes()
            full = _data.ImageSet(x, y, list(_shapes.LABELS))
        elif o.path is None:
            if o.channels == 3:
                raise UserError("data.channels: the embedded digits are grayscale; use channels: 1 (or null), or set data.path")
            full = _data.load_digits(o.resolution)
        else:
            listing = _data.list_images(o.path)
            self._streams = _stream.open_folder(listing, o.stream, o.resolution, o.channels, o.val_fraction, o.split_seed, o.hflip)
            if self._streams is not None:
                self._labels, self._channels, self._known = listing.labels, self._streams[0].channels, True
                return
            full = _data.load_folder(o.path, o.resolution, o.channels, listing)
        self._train, self._val = _data.split(full, o.val_fraction, o.split_seed)
        self._labels, self._channels, self._known = full.labels, int(full.x.shape[1]), True

    def _ensure(self) -> None:
        if not self._known:
            self.setup()

    def train_dataset(self) -> _data.ImageDataset | _stream.ImageFolderStream:
        self.setup()
        if self._streams is not None:
            return self._streams[0]
        return _data.ImageDataset(self._train, hflip=self.options.hflip)

    def val_dataset(self) -> _data.ImageDataset | _stream.ImageFolderStream | None:
        self.setup()
        if self._streams is not None:
            return self._streams[1] if len(self._streams[1]) else None
        return _data.ImageDataset(self._val) if len(self._val.x) else None

    def _sets(self) -> tuple[_data.ImageSet, _data.ImageSet]:
        """The train and held-out images as tensors; from a streamed folder, at most
        :data:`~diffcore_image.stream.EVAL_IMAGES` of each, evenly spaced."""
        self.setup()
        if self._streams is not None:
            return _stream.materialise(self._streams[0]), _stream.materialise(self._streams[1])
        return self._train, self._val

    @property
    def labels(self) -> list[str] | None:
        self._ensure()
        return self._labels

    @property
    def channels(self) -> int:
        self._ensure()
        return self._channels

    def state_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "channels": self.channels, "resolution": self.options.resolution}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._labels = state.get("labels")
        self._channels = int(state.get("channels", self._channels or 1))
        self._known = True

    # ------------------------------------------------------------- sampling
    def sample_batches(
        self,
        num: int,
        batch_size: int,
        classes: Sequence[int] | None = None,
        options: BaseModel | None = None,
    ) -> Iterable[dict]:
        """Batches of ``shape`` [b, C, H, W]; ``cond`` cycles through ``classes`` (or evenly
        through every class of labelled data: sample i gets class i mod K); ``None`` for
        unlabelled data. An unconditional backbone ignores ``cond``."""
        r, c, labels = self.options.resolution, self.channels, self.labels
        ids = cycle_classes(num, classes, len(labels) if labels else None)
        for start in range(0, num, batch_size):
            stop = min(num, start + batch_size)
            batch = {"shape": (stop - start, c, r, r), "index": list(range(start, stop))}
            if ids is not None:
                part = ids[start:stop]
                batch["cond"] = torch.tensor(part, dtype=torch.long)
                batch["labels"] = [labels[i] if labels and 0 <= i < len(labels) else str(i) for i in part]
            yield batch

    def write_samples(self, results: list[tuple[torch.Tensor, dict]], out_dir: Path,
                      options: BaseModel | None = None) -> list[Path]:
        """One PNG per sample (``<index>[_<class>].png``) and ``samples.png``, a near-square
        grid of them (one class per column when the classes make that near square). The
        image domain has no sample options."""
        xs, idx, labels = [], [], []
        for x, batch in results:
            xs.append(x.detach().float().cpu())
            n = len(x)
            idx += list(batch.get("index", range(len(idx), len(idx) + n)))
            labels += list(batch.get("labels") or [None] * n)
        if not xs:
            return []
        x = torch.cat(xs)
        ncols = grid_columns(len(x), len({lb for lb in labels if lb is not None}))
        return write_images(x, out_dir, indices=idx, labels=labels, grid_name=GRID_NAME, ncols=ncols)

    # -------------------------------------------------------------- editing
    def edit_batches(
        self,
        inputs: Sequence[str],
        num: int,
        batch_size: int,
        classes: Sequence[int] | None = None,
        options: BaseModel | None = None,
    ) -> Iterable[dict]:
        """PNG/JPEG ``inputs`` loaded like a training folder's images, ``num`` edits each;
        the region to generate from ``--mask`` (white = generated), ``--box`` or ``--half``
        (none: keep nothing, for SDEdit and inversion). ``cond`` only with ``classes``
        (without, a class-conditional U-Net is asked unconditionally). See
        :mod:`diffcore_image.edit`."""
        return _edit.edit_batches(inputs, num, batch_size, resolution=self.options.resolution, channels=self.channels,
                                  labels=self.labels, classes=classes, options=options)

    def write_edits(self, results: list[tuple[torch.Tensor, dict]], out_dir: Path) -> list[Path]:
        """One PNG per edit (``<index>_<input>[_<class>].png``) and ``before_after.png``:
        inputs, inputs with the generated region tinted red, outputs."""
        return _edit.write_edits(results, out_dir)

    # -------------------------------------------------------------- metrics
    def evaluate(self, sample_fn: Callable[[dict], torch.Tensor], num: int, out_dir: Path,
                 batch_size: int = 250) -> dict[str, float]:
        """Class consistency and the Fréchet distance of ``num`` samples (classes evenly
        spread, generated ``batch_size`` at a time) against the held-out images, with its
        real-vs-real floor (see :mod:`diffcore_image.metrics`); for shapes64, by a small CNN
        trained on the training renders, with shape and colour consistency apart. Also writes
        ``eval_grid.png`` (up to 100 of the samples) to ``out_dir``."""
        train, val = self._sets()
        if len(val.x) < 2:
            raise UserError("data.val_fraction: no held-out images to evaluate against; set data.val_fraction > 0 (e.g. 0.2)")
        shapes = self.options.shapes64
        if shapes:
            model = ShapesMetricModel(train.x, train.y, num_colours=len(_shapes.COLOURS), num_shapes=len(_shapes.SHAPES))
        else:  # feature dimension at most a quarter of the reference size (64 for digits' 359)
            model = MetricModel(train.x, train.y, features=max(2, min(FEATURES, len(val.x) // 4)))
        xs, ys = [], []
        for batch in self.sample_batches(num, batch_size):
            xs.append(sample_fn(batch).detach().float().cpu())
            if "cond" in batch:
                ys.append(batch["cond"])
        x = torch.cat(xs)
        requested = torch.cat(ys) if ys else None
        metrics = (shapes_metrics if shapes else image_metrics)(model, x, requested, train.x, val.x, val.y)
        if out_dir is not None:
            k = min(len(x), 100)
            write_grid(x[:k], Path(out_dir) / "eval_grid.png", grid_columns(k, len(self.labels or [])))
        return metrics
