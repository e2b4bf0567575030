"""Checks of a first-stage autoencoder (:func:`check_autoencoder`): it builds, its latents and
reconstructions round-trip the domain's data shape without NaN, its loss trains, a short fit
brings decoder(encoder(x)) close to x on the domain's own data, and it is rebuilt from the
domain's saved state with weights that load back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import BaseModel

from ..contract.domain import Domain
from ..contract.hooks import AutoencoderSpec
from ..nn.autoencoder import reconstruct as _reconstruct  # the round trip train-autoencoder checks too
from .options import built
from .report import Report, _Checker, _Stop, run_checks


def check_autoencoder(
    spec: AutoencoderSpec,
    domain: Domain,
    options: Mapping[str, Any] | BaseModel | None = None,
    *,
    steps: int = 100,
    examples: int = 64,
    max_relative_mse: float = 0.5,
    raise_on_failure: bool = True,
    report: Report | None = None,
) -> Report:
    """Check an :class:`~diffcore.AutoencoderSpec` on a set-up ``domain`` with ``options`` (its
    ``autoencoder:`` section; keep it small). The short fit is ``steps`` AdamW steps on the
    domain's first ``examples`` training examples, after which the reconstruction's mean squared
    error must be below ``max_relative_mse`` times the data's variance (and below where it began)."""

    def checks(ck: _Checker) -> None:
        net, opts = built(ck, spec, AutoencoderSpec, domain, options, "autoencoder",
                          "build must return an nn.Module with encode, decode and loss")
        missing = [m for m in ("encode", "decode", "loss") if not callable(getattr(net, m, None))]
        if not ck.expect(isinstance(net, torch.nn.Module) and not missing, "build returns an nn.Module with encode, decode, loss",
                         f"build() returned {type(net).__name__} without {', '.join(missing) or 'nn.Module'}",
                         "return an nn.Module with encode(x), decode(z) and loss(x) -> (loss, logs)"):
            raise _Stop()
        with ck.running("training examples from the domain"):
            ds = domain.train_dataset()
            x = domain.collate([ds[i] for i in range(min(examples, len(ds)))])["x"].float()
        before = _check_round_trip(ck, net, x)
        _check_fit(ck, net, x, steps, before, max_relative_mse)
        _check_rebuilt(ck, spec, net, opts, domain, x[:4])

    return run_checks(f"autoencoder {getattr(spec, 'name', spec)!r}", checks, report, raise_on_failure)


def _check_round_trip(ck: _Checker, net, x: torch.Tensor) -> float:
    """Shapes round-trip, nothing is NaN; returns the reconstruction's MSE."""
    net.eval()
    with ck.running("decode(encode(x))", "encode(x) returns a posterior (with mode()) or a tensor; decode(z) gives x's shape"):
        z, x_hat = _reconstruct(net, x)
    if tuple(x_hat.shape) != tuple(x.shape):
        ck.fail(f"decode(encode(x)) has shape {tuple(x_hat.shape)} for x of shape {tuple(x.shape)} (latents {tuple(z.shape)})",
                "the decoder must give the data's shape back for the domain's default data")
        raise _Stop()
    ck.ok(f"shapes round-trip ({tuple(x.shape[1:])} -> {tuple(z.shape[1:])} -> {tuple(x_hat.shape[1:])})")
    ck.expect(bool(torch.isfinite(z).all() and torch.isfinite(x_hat).all()), "latents and reconstructions are finite",
              "encode or decode returned NaN or inf")
    return float((x_hat - x).pow(2).mean())


def _check_fit(ck: _Checker, net, x: torch.Tensor, steps: int, before: float, max_relative_mse: float) -> None:
    """A short fit with its own loss brings the reconstruction close to the data."""
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    with ck.running("a short fit with loss(x)", "loss(x) must return (a scalar tensor, {name: float})"):
        for _ in range(steps):
            batch = x[torch.randperm(len(x), generator=g)[:32]]
            loss, logs = net.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    ck.expect(isinstance(logs, Mapping), "loss returns its logs as a mapping", f"loss returned {type(logs).__name__} as its logs")
    ck.expect(bool(torch.isfinite(loss.detach())), "the loss stays finite", f"the loss became {float(loss.detach())}")
    net.eval()
    after = float((_reconstruct(net, x)[1] - x).pow(2).mean())
    var = float(x.var())
    ck.expect(after < max_relative_mse * var and after < before,
              f"decode(encode(x)) is close to x after {steps} steps (MSE {after:.4g}, data variance {var:.4g})",
              f"after {steps} steps the reconstruction's MSE is {after:.4g} (it began at {before:.4g}; the data's variance is {var:.4g})",
              "check the decoder's output range and the loss (it must train the reconstruction)")


def _check_rebuilt(ck: _Checker, spec: AutoencoderSpec, net, opts: BaseModel, domain: Domain, x: torch.Tensor) -> None:
    """Rebuilt from the domain's saved state, as a latent run does: the weights load and agree."""
    from ..platform import runs

    tmp = ck.tmpdir()
    with ck.running("rebuilding from the domain's saved state and loading the weights",
                    "build() must give the same architecture from a domain restored with load_state_dict() (no setup())"):
        fresh = type(domain)(domain.options, workdir=tmp / "cache")
        fresh.load_state_dict(json.loads(json.dumps(domain.state_dict())))
        net2 = spec.build(opts, fresh)
        runs.save_weights(net, tmp / "ae.safetensors")
        runs.load_weights(net2, runs.read_weights(tmp / "ae.safetensors"), tmp / "ae.safetensors")
    net2.eval()
    same = torch.allclose(_reconstruct(net2, x)[1], _reconstruct(net, x)[1], atol=1e-5, rtol=1e-4)
    ck.expect(same, "rebuilt autoencoder reproduces the reconstructions", "the autoencoder rebuilt from saved weights reconstructs differently")
