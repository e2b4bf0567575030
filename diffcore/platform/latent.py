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
        decoded = [(self.decode(z).cpu(), self._data_batch(b)) for z, b in results]
        return legacy.write_samples(self.inner, decoded, out_dir, options)

    def evaluate(self, sample_fn, num: int, out_dir: Path, batch_size: int = 64) -> dict[str, float]:
        def decoded(batch: Batch) -> torch.Tensor:
            return self.decode(sample_fn(self._latent_batch(batch)))

        return legacy.evaluate(self.inner, decoded, num, out_dir, batch_size)

    def edit_batches(self, inputs, num, batch_size, classes=None, options=None):
        raise UserError(f"diffcore edit does not support latent diffusion runs yet (this run has latent.autoencoder "
                        f"{self.info['path']}); edit with a run trained on the {self.name!r} data itself")


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
    if not isinstance(info, dict) or "path" not in info:
        raise UserError("latent.autoencoder is set but domain_state.json has no latent section: the run was not trained on latents; "
                        "set latent.autoencoder to null in its config.yaml, or train it again")
    return info


def _same_weights(info: dict[str, Any], ae) -> None:
    if ae.sha256 != info.get("sha256"):
        raise UserError(f"latent.autoencoder: the autoencoder run {info['path']} has changed since this run was trained on it "
                        f"(weights sha256 {ae.sha256[:12]}..., recorded {str(info.get('sha256'))[:12]}...): restore it, or train the diffusion run again")


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
    info = {"path": str(ae.dir), "sha256": ae.sha256, "autoencoder": ae.resolved.spec.name, "data_shape": list(shape),
            "latent_shape": list(ae.meta["latent_shape"]), "scale_factor": lc.scale_factor}
    latent = LatentDomain(domain, ae.net, info)
    if before and lc.scale_factor is None:
        info["scale_factor"] = before["scale_factor"]  # a resumed run keeps the scale its weights learned
    elif lc.scale_factor is None:
        z = torch.cat([latent.encode(x, scale=1.0) for x in batches])
        info["scale_factor"] = float(1.0 / z.float().std().clamp_min(1e-8))
    return latent


def saved_state(run_dir: Path) -> dict[str, Any] | None:
    """The state a resumed run saved (``domain_state.json``), or ``None`` for a new run."""
    import json

    path = Path(run_dir) / "domain_state.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not valid JSON: {e}") from None


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
