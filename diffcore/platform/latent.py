"""Latent diffusion: a run's domain seen through a trained autoencoder (Rombach et al. 2022).

With ``latent.autoencoder: AE_RUN`` (:mod:`.autoencoder_run`), :func:`runs.build_model` wraps
the run's domain in a :class:`LatentDomain`, and nothing else in training or sampling knows:

- training reads the domain's own batches; :func:`encode_batch` (called by the training module
  once a batch is on its device) replaces ``x`` by z = scale_factor * E(x) with the frozen
  encoder (the posterior's mean), conditions untouched;
- ``scale_factor`` is LDM's: 1 / std of the latents of the first ``latent.scale_batches``
  training batches (or ``latent.scale_factor``), so the diffusion sees unit-variance data;
- the backbone is built for the latents: the view answers :attr:`Domain.latent_shape`, which
  a backbone reads before the domain's own channels and resolution, and a one-example forward
  pass checks that it takes them;
- sampling batches have the latent shape; :meth:`LatentDomain.write_samples` and
  :meth:`LatentDomain.evaluate` decode D(z / scale_factor) before the domain writes files or
  computes metrics (``diffcore sample``, ``evaluate``, the sharded path and previews alike);
- ``domain_state.json`` holds ``{"domain": the domain's state, "latent": {path, sha256, scale_factor,
  data_shape, latent_shape}}``; loading the run refuses an autoencoder whose weights changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..contract import legacy
from ..contract.domain import Batch, Domain
from ..contract.errors import UserError
from ..nn.autoencoder import latent_of
from . import autoencoder_run


class LatentDomain(Domain):
    """The view of ``inner`` in the latent space of ``autoencoder`` (an ``nn.Module`` with
    ``encode`` and ``decode``); ``info`` is what ``domain_state.json`` keeps of it."""

    def __init__(self, inner: Domain, autoencoder: torch.nn.Module, info: dict[str, Any]):
        super().__init__(inner.options, workdir=inner.workdir)
        self.inner, self.autoencoder, self.info = inner, autoencoder, info
        self.name, self.Options, self.SampleOptions = inner.name, inner.Options, inner.SampleOptions

    def __getattr__(self, name: str):  # what a backbone or writer reads of the domain (codec, channels...)
        if name in ("inner", "__setstate__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    # ------------------------------------------------------------------ data
    def setup(self) -> None:
        self.inner.setup()

    def train_dataset(self):
        return self.inner.train_dataset()

    def val_dataset(self):
        return self.inner.val_dataset()

    def collate(self, items: list[Batch]) -> Batch:
        return self.inner.collate(items)

    @property
    def labels(self) -> list[str] | None:
        return self.inner.labels

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.info["latent_shape"])

    @property
    def scale(self) -> float:
        return float(self.info["scale_factor"])

    def state_dict(self) -> dict[str, Any]:
        return {"domain": self.inner.state_dict(), "latent": dict(self.info)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state.get("domain", {}))

    # ------------------------------------------------------------- encoding
    def _device(self) -> torch.device:
        return next(self.autoencoder.parameters()).device

    @torch.no_grad()
    def encode(self, x: torch.Tensor, scale: float | None = None) -> torch.Tensor:
        """z = scale_factor * E(x) (the posterior's mean), on ``x``'s device."""
        self.autoencoder.to(x.device)
        z = latent_of(self.autoencoder.encode(x.float()))
        return (z * (self.scale if scale is None else scale)).to(x.dtype)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x = D(z / scale_factor), on ``z``'s device."""
        x = self.autoencoder.decode(z.float().to(self._device()) / self.scale)
        return x.to(z.device)

    def _data_batch(self, batch: Batch) -> Batch:
        return {**batch, "shape": tuple(batch["data_shape"])} if "data_shape" in batch else batch

    def _latent_batch(self, batch: Batch) -> Batch:
        n = batch["shape"][0]
        return {**batch, "shape": (n, *self.latent_shape), "data_shape": tuple(batch["shape"])}

    # ------------------------------------------------------ sampling, output
    def sample_batches(self, num, batch_size, classes=None, options=None):
        for batch in self.inner.sample_batches(num, batch_size, classes=classes, options=options):
            yield self._latent_batch(batch)

    def write_samples(self, results, out_dir: Path, options=None) -> list[Path]:
        return legacy.write_samples(self.inner, _Decoded(self, list(results)), out_dir, options)

    def evaluate(self, sample_fn, num: int, out_dir: Path, batch_size: int = 64) -> dict[str, float]:
        def decoded(batch: Batch) -> torch.Tensor:
            return self.decode(sample_fn(self._latent_batch(batch)))

        return legacy.evaluate(self.inner, decoded, num, out_dir, batch_size)

    def edit_batches(self, inputs, num, batch_size, classes=None, options=None):
        raise UserError(f"diffcore edit does not support latent diffusion runs yet (this run has latent.autoencoder "
                        f"{self.info['path']}); edit with a run trained on the {self.name!r} data itself")


class _Decoded(Sequence):
    """The (decoded sample, data batch) pairs of latent results, each batch decoded when the
    domain's writer reaches it: never every decoded batch in memory at once."""

    def __init__(self, view: LatentDomain, results: list):
        self.view, self.results = view, results

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        z, batch = self.results[i]
        return self.view.decode(z).cpu(), self.view._data_batch(batch)


def inner_of(domain: Domain) -> Domain:
    """The domain itself under a latent view (what data loaders collate with), else ``domain``."""
    return domain.inner if isinstance(domain, LatentDomain) else domain


def encode_batch(domain: Domain, batch: Batch) -> Batch:
    """A training batch for the diffusion: ``x`` encoded where ``domain`` is a latent view."""
    if isinstance(domain, LatentDomain):
        return {**batch, "x": domain.encode(batch["x"])}
    return batch


def _first_batches(domain: Domain, batch_size: int, count: int) -> list[torch.Tensor]:
    loader = DataLoader(domain.train_dataset(), batch_size=batch_size, shuffle=True, collate_fn=domain.collate,
                        generator=torch.Generator().manual_seed(0))
    out = []
    for batch in loader:
        if batch.get("mask") is not None:
            raise UserError(f"latent.autoencoder: the {domain.name!r} domain's batches carry a mask (examples of different sizes); "
                            "latent diffusion needs data of one shape: set latent.autoencoder to null")
        out.append(batch["x"])
        if len(out) >= count:
            break
    return out


def _record(info: Any) -> dict[str, Any]:
    """A run's record of its autoencoder (``domain_state.json``'s ``latent``), refused if absent."""
    if not isinstance(info, dict) or not isinstance(info.get("path"), str):
        raise UserError("latent.autoencoder is set but domain_state.json has no latent section: the run was not trained on latents; "
                        "set latent.autoencoder to null in its config.yaml, or train it again")
    missing = [k for k in ("sha256", "data_shape", "latent_shape", "scale_factor") if info.get(k) is None]
    if missing:
        raise UserError(f"domain_state.json's latent section has no {', '.join(missing)} (the file was edited or cut short); "
                        "restore the file written by `diffcore train`, or train the run again")
    return info


def _same_weights(info: dict[str, Any], ae) -> None:
    if ae.sha256 != info.get("sha256"):
        raise UserError(f"latent.autoencoder: the autoencoder run {info['path']} has changed since this run was trained on it "
                        f"(weights sha256 {ae.sha256[:12]}..., recorded {str(info.get('sha256'))[:12]}...): restore it, or train the diffusion run again")


def _same_settings(before: dict[str, Any], lc) -> None:
    """A resumed run keeps the autoencoder and scale factor it was trained with: others are refused."""
    recorded = Path(before["path"])
    if Path(lc.autoencoder).expanduser().resolve() != recorded.resolve():
        raise UserError(f"latent.autoencoder: this run was trained on the autoencoder run {recorded} (domain_state.json), not "
                        f"{lc.autoencoder}; resume with latent.autoencoder={recorded}, or train a new run with --out NEW_RUN")
    scale = before.get("scale_factor")
    if lc.scale_factor is not None and lc.scale_factor != scale:
        raise UserError(f"latent.scale_factor: this run was trained with scale factor {scale} (domain_state.json), not "
                        f"{lc.scale_factor}; drop latent.scale_factor (or set it to {scale}), or train a new run with --out NEW_RUN")


def view(domain: Domain, resolved, state: dict[str, Any] | None, previous: dict[str, Any] | None = None) -> LatentDomain:
    """``domain`` (not set up) as a latent view: for training (``state`` None) set up, checked
    against the autoencoder run and its scale factor measured (a resumed run: ``previous``, the
    state it saved, whose autoencoder and scale factor it keeps); else restored from the run's
    state, the autoencoder's weights checked against the hash the run recorded."""
    lc = resolved.config.latent
    if state is not None:
        info = _record(state.get("latent"))
        ae = autoencoder_run.load(info["path"])
        _same_weights(info, ae)
        domain.load_state_dict(state.get("domain", {}))
        return LatentDomain(domain, ae.net, info)
    before = _record(previous.get("latent")) if previous is not None else None
    if before:
        _same_settings(before, lc)
    ae = autoencoder_run.load(before["path"] if before else lc.autoencoder)
    if before:
        _same_weights(before, ae)
    if ae.resolved.recipe.domain != domain.name:
        raise UserError(f"latent.autoencoder: {ae.dir} is an autoencoder of the {ae.resolved.recipe.domain!r} domain, "
                        f"but this run's domain is {domain.name!r}; train one with `diffcore train-autoencoder --plugin {resolved.recipe.name}`")
    domain.setup()
    batches = _first_batches(domain, resolved.config.training.batch_size, lc.scale_batches)
    shape = tuple(batches[0].shape[1:]) if batches else None
    if shape is None:
        raise UserError(f"the {domain.name!r} domain's training set is empty; check the data: section of the config")
    if list(shape) != list(ae.meta.get("data_shape", [])):
        raise UserError(f"latent.autoencoder: {ae.dir} was trained on data of shape {tuple(ae.meta.get('data_shape', ()))}, but this run's "
                        f"data have shape {shape}; train an autoencoder on this run's data: (`diffcore train-autoencoder --plugin "
                        f"{resolved.recipe.name}` with the same data: options)")
    if not isinstance(ae.meta.get("latent_shape"), list):
        raise UserError(f"latent.autoencoder: {ae.dir / autoencoder_run.META} has no latent_shape list: its training did not "
                        "finish or the file was edited; train the autoencoder again")
    info = {"path": str(ae.dir), "sha256": ae.sha256, "autoencoder": ae.resolved.spec.name, "data_shape": list(shape),
            "latent_shape": list(ae.meta["latent_shape"]), "scale_factor": lc.scale_factor}
    latent = LatentDomain(domain, ae.net, info)
    if before and lc.scale_factor is None:
        info["scale_factor"] = before["scale_factor"]  # a resumed run keeps the scale its weights learned
    elif lc.scale_factor is None:
        z = torch.cat([latent.encode(x, scale=1.0) for x in batches])
        info["scale_factor"] = float(1.0 / z.float().std().clamp_min(1e-8))
    return latent


def saved_state(run_dir: Path, *, required: bool = False) -> dict[str, Any] | None:
    """The state a run saved (``domain_state.json``), or ``None`` for a new run; ``required``
    (loading a latent run, which checks its autoencoder against it): refused if missing."""
    import json

    path = Path(run_dir) / "domain_state.json"
    if not path.is_file():
        if required:
            raise UserError(f"{path} is missing: a latent diffusion run (latent.autoencoder set) records its autoencoder's "
                            "weights hash and scale factor there; restore the file, or train the run again")
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a JSON {type(state).__name__}, not an object (the domain's state); "
                        "restore the file written by `diffcore train`, or train the run again")
    return state


def check_backbone(net: torch.nn.Module, domain: LatentDomain, spec_name: str) -> None:
    """One example of the latent shape through the backbone: a backbone that cannot take the
    latents is refused here, naming the autoencoder run and the shapes, not at the first step."""
    shape = domain.latent_shape
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, *shape), torch.full((1,), 0.5), None)
        err = None if tuple(out.shape) == (1, *shape) else f"it returned shape {tuple(out.shape[1:])}"
    except Exception as e:  # a size mismatch inside the network
        err = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if err:
        raise UserError(f"latent.autoencoder: backbone {spec_name!r} cannot take the latents of {domain.info['path']} "
                        f"(shape {shape}, data shape {tuple(domain.info['data_shape'])}): {err}; change backbone: options "
                        "(e.g. backbone.channel_mult) or train an autoencoder with another latent size")
