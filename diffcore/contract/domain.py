"""The plugin contract for a domain: data, tensor layout, noise, writers and metrics.

A *domain* is a kind of data (images, audio, molecules, 2-D points...). The core's
mathematics never looks inside it: it only sees tensors ``x`` of the domain's layout, an
opaque condition ``cond`` handed to the backbone, and an optional ``mask`` saying which
entries of ``x`` are real (for variable-size data). Everything domain-specific lives in a
subclass of :class:`Domain`, registered by a plugin through the ``diffcore_register_domains``
hook (see :mod:`diffcore.hookspecs`).

Batches are plain dicts:

``x``
    float tensor ``[B, ...]``: the data, already normalised to the range the diffusion works in
    (e.g. [-1, 1] for images). Only present in training batches.
``cond`` (optional)
    anything the backbone understands: a ``LongTensor [B]`` of class ids, a dict of graph
    tensors... ``None`` (or absent) means unconditional.
``mask`` (optional)
    float/bool tensor broadcastable to ``x``: 1 where an entry is real, 0 where it is padding.
    Losses average over real entries only; :meth:`Domain.noise` must return zeros at padding.

A sampling batch (from :meth:`Domain.sample_batches`) has no ``x`` but a ``shape`` (the full
shape of ``x`` including the batch dimension) and may carry anything the writer needs under
other keys (``labels``, ``smiles``...). It may also carry ``init`` (a tensor shaped like ``x``:
a first guess the domain has, e.g. torsion angles from a classical method) and ``strength`` in
(0, 1]: sampling then starts from ``init`` noised to that fraction of the steps and denoises
from there (SDEdit, Meng et al. 2022) instead of starting from pure noise.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch.utils.data import Dataset, default_collate

from . import legacy

Batch = dict[str, Any]


def cycle_classes(num: int, classes: Sequence[int] | None, num_labels: int | None) -> list[int] | None:
    """The class id of each of ``num`` samples: ``classes`` (from ``--class``) cycled over the
    samples, else every class in turn (sample i gets class i mod ``num_labels``), so that samples
    cover the classes evenly; ``None`` for unlabelled data (``num_labels`` None or 0). The
    convention of every built-in domain's :meth:`Domain.sample_batches`."""
    if classes:
        return [int(classes[i % len(classes)]) for i in range(num)]
    if num_labels:
        return [i % num_labels for i in range(num)]
    return None


class Options(BaseModel):
    """Base class for plugin option models: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class NoOptions(Options):
    """An options model with no fields."""


class Domain(abc.ABC):
    """A kind of data. Subclass it, then register the class from a plugin.

    Class attributes a subclass sets:

    ``name``
        the domain's registry name (e.g. ``"image"``); backbones name it to say what they fit.
    ``Options``
        the pydantic model of the ``data:`` section of a run config (subclass
        :class:`Options`, so unknown keys are refused). Every field needs a default: a run with
        no ``data:`` section must work offline on the embedded default data set.
    ``SampleOptions``
        optional pydantic model of extra ``diffcore sample`` options for this domain
        (e.g. ``smiles: list[str]`` for molecules: ``--smiles CCO`` on the command line).
    ``EditOptions``
        optional pydantic model of extra ``diffcore edit`` options (e.g. ``box``, ``half`` for
        images: ``--box 0,0,4,8``), for a domain that supports editing (:meth:`edit_batches`).

    ``period``
        ``None`` for data in R^n (the default). A number P says every coordinate of ``x`` is an
        angle-like quantity modulo P (2 pi for torsion angles): the data live on a torus. The
        loss then uses the wrapped-normal target, the run needs the ``ve`` schedule, the
        backbone must be periodic in ``x_t`` (see :mod:`diffcore.math.torus`), and generated
        ``x`` is wrapped to [-P/2, P/2) before the writer sees it.

    The constructor receives the validated options and a ``workdir``: a folder the domain may
    use as a cache (built data sets, downloaded-nothing-ever). Constructing must be cheap:
    heavy work belongs in :meth:`setup`.
    """

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    SampleOptions: ClassVar[type[BaseModel] | None] = None
    EditOptions: ClassVar[type[BaseModel] | None] = None
    period: ClassVar[float | None] = None

    def __init__(self, options: BaseModel | None = None, *, workdir: Path | None = None):
        self.options = options if options is not None else self.Options()
        self.workdir = Path(workdir) if workdir is not None else None

    # ------------------------------------------------------------------ data
    @abc.abstractmethod
    def setup(self) -> None:
        """Build or load the data sets. Idempotent. May compute statistics (e.g. normalisation)
        that :meth:`state_dict` then returns. A user's mistake (missing folder, no readable
        file) raises :class:`diffcore.errors.UserError` with a message naming the input."""

    @abc.abstractmethod
    def train_dataset(self) -> Dataset:
        """The training set: a map-style dataset whose items are batch dicts for one example
        (``x`` without the batch dimension, optional ``cond``, optional ``mask``)."""

    def val_dataset(self) -> Dataset | None:
        """Held-out examples used by :meth:`evaluate` (``None`` if the domain has none)."""
        return None

    def collate(self, items: list[Batch]) -> Batch:
        """Stack items into a batch. The default stacks tensors; variable-size domains pad
        here and add a ``mask``."""
        return default_collate(items)

    @property
    def labels(self) -> list[str] | None:
        """Names of the classes a conditional model can be asked for (index = class id), or
        ``None`` if the domain has no class labels. ``diffcore sample --class NAME`` looks
        names up here."""
        return None

    @property
    def latent_shape(self) -> tuple[int, ...] | None:
        """One example's shape in an autoencoder's latent space when the run is a latent
        diffusion run (``latent.autoencoder``; the platform's latent view of this domain answers
        it), else ``None``. A backbone that sizes itself from the domain (its channels,
        resolution) reads this first, so the same backbone serves data and latents."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state computed from the data that sampling needs later (e.g.
        normalisation statistics). Saved in the run directory as ``domain_state.json``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (sampling a run without its data)."""

    # ------------------------------------------------------ layout and noise
    def noise(self, like: torch.Tensor, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard-normal noise shaped like ``like`` in the domain's noise space.

        The default draws i.i.d. N(0, 1) and zeroes padded entries (``batch["mask"]``).
        Override to restrict noise to a subspace, e.g. zero centre of mass for coordinates
        (Hoogeboom et al. 2022). Used for training targets and by every stochastic sampler.
        """
        eps = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        mask = batch.get("mask")
        return eps * mask.to(eps.dtype) if mask is not None else eps

    # ------------------------------------------------------ sampling, output
    def sampling_settings(self) -> dict[str, Any]:
        """The domain's own options (of the ``data:`` section) that change what sampling makes,
        e.g. how a molecule's start conformers are chosen, as a JSON-serialisable mapping. An
        evaluation records them (``evaluated_with["domain"]``) and they are part of its record's
        key: evaluating again after changing one in ``RUN/config.yaml`` adds a record instead of
        replacing the other setting's. The default: none."""
        return {}

    @abc.abstractmethod
    def sample_batches(
        self,
        num: int,
        batch_size: int,
        classes: Sequence[int] | None = None,
        options: BaseModel | None = None,
    ) -> Iterable[Batch]:
        """What to generate: yields sampling batches (``shape``, optional ``cond`` and
        ``mask``, plus whatever :meth:`write_samples` needs) covering ``num`` samples in
        batches of at most ``batch_size``. ``classes`` are class ids requested with
        ``--class`` (cycled over the samples: :func:`cycle_classes`); ``options`` is a validated
        ``SampleOptions``."""

    @abc.abstractmethod
    def write_samples(
        self, results: list[tuple[torch.Tensor, Batch]], out_dir: Path, options: BaseModel | None = None
    ) -> list[Path]:
        """Write generated samples (each ``(x, batch)`` pair: a generated tensor and the
        sampling batch it came from) as the domain's files (PNG, WAV, SDF...) under
        ``out_dir``; return the paths written. Must not overwrite files other than its own.
        ``options`` is what :meth:`sample_batches` was given: the validated ``SampleOptions``
        of ``diffcore sample`` (``None`` where nobody gave any, e.g. training previews: use the
        defaults). Written before ``options`` existed, ``write_samples(results, out_dir)`` is
        still called, with a deprecation warning (:mod:`diffcore.contract.legacy`)."""

    # ------------------------------------------------------------- metrics
    def evaluate(
        self, sample_fn: Callable[[Batch], torch.Tensor], num: int, out_dir: Path, batch_size: int = 64
    ) -> dict[str, float]:
        """Quality metrics of the model behind ``sample_fn`` (a function from a sampling batch
        to generated ``x``), from ``num`` samples generated in batches of at most
        ``batch_size`` (the run's ``sampling.batch_size`` or ``diffcore evaluate
        --batch-size``). Returns flat ``{name: value}``; the CLI records it in
        ``metrics.json``. The default reports nothing. Written before ``batch_size`` existed,
        ``evaluate(sample_fn, num, out_dir)`` is still called, with a deprecation warning."""
        return {}

    # ------------------------------------------------------------- editing
    def edit_batches(
        self,
        inputs: Sequence[str],
        num: int,
        batch_size: int,
        classes: Sequence[int] | None = None,
        options: BaseModel | None = None,
    ) -> Iterable[Batch]:
        """What ``diffcore edit`` edits: the user's ``inputs`` (what ``--input`` gave: file
        paths, or domain text such as a SMILES) as sampling batches, ``num`` outputs per input,
        in batches of at most ``batch_size``. Each batch is a sampling batch (``shape``,
        optional ``cond`` and ``mask``, whatever the writer needs) with two more keys:

        ``known``
            float tensor of the full shape ``shape``: the input in the diffusion's normalised
            space (what a training batch's ``x`` would be).
        ``keep``
            float tensor broadcastable to ``known``: 1 where the input is kept (inpainting:
            those entries are returned exactly), 0 where the model generates. All zeros (or
            absent) keeps nothing: SDEdit and inversion then restyle the whole input.

        ``classes`` are ``--class`` ids (cycled: :func:`cycle_classes`), the condition of the
        output; ``options`` is a validated ``EditOptions`` (the mask: a mask file, a box, a
        time range, fixed atoms...). A bad input (wrong size, rate, element, an index out of
        range) raises :class:`diffcore.errors.UserError` naming it. A domain that does not
        override this does not support editing (``diffcore edit`` says so)."""
        raise NotImplementedError

    def write_edits(self, results: list[tuple[torch.Tensor, Batch]], out_dir: Path) -> list[Path]:
        """Write edited samples (``(x, batch)`` pairs; the batch holds ``known`` and ``keep``)
        under ``out_dir``; return the paths. The default writes them as samples
        (:meth:`write_samples`, with no options); a domain adds a before/after picture here."""
        return legacy.write_samples(self, results, out_dir, None)

    @classmethod
    def supports_editing(cls) -> bool:
        """Whether the domain overrides :meth:`edit_batches`."""
        return cls.edit_batches is not Domain.edit_batches

