"""Checks of a backbone (:func:`check_backbone`): it builds, its forward pass fits the domain's
data and depends on ``t`` and ``x_t``, it trains with diffcore's loss, and it is rebuilt from
the domain's saved state with weights that load back."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from ..contract.domain import Domain
from ..contract.hooks import BackboneSpec
from ..math import schedules as _schedules
from .options import built
from .report import Report, _Checker, _Stop, run_checks


def check_backbone(
    spec: BackboneSpec,
    domain: Domain,
    options: Mapping[str, Any] | BaseModel | None = None,
    *,
    raise_on_failure: bool = True,
    report: Report | None = None,
) -> Report:
    """Check a :class:`~diffcore.BackboneSpec` on a set-up ``domain`` (e.g. the ``domain`` of
    :func:`check_domain`'s report) with ``options`` (its ``backbone:`` section; keep it small)."""

    def checks(ck: _Checker) -> None:
        net, opts = _build(ck, spec, domain, options)
        with ck.running("a training batch from the domain"):
            ds = domain.train_dataset()
            batch = domain.collate([ds[i] for i in range(min(4, len(ds)))])
        x0 = batch["x"]
        b = x0.shape[0]
        x_t = domain.noise(x0, batch, generator=torch.Generator().manual_seed(0))
        t = torch.linspace(0.1, 0.9, b, dtype=x0.dtype) if b > 1 else torch.tensor([0.5], dtype=x0.dtype)
        net.eval()
        with torch.no_grad():
            _check_forward(ck, net, x_t, t, batch.get("cond"))
            _check_dependence(ck, net, x_t, t, domain, batch)
        _check_training_step(ck, net, domain, batch)
        _check_rebuilt(ck, spec, net, opts, domain, x_t, t, batch.get("cond"))

    return run_checks(f"backbone {getattr(spec, 'name', spec)!r}", checks, report, raise_on_failure)


def _build(ck: _Checker, spec: Any, domain: Domain, options: Any) -> tuple[nn.Module, BaseModel]:
    net, opts = built(ck, spec, BackboneSpec, domain, options, "backbone",
                      "build must return the nn.Module for this (set-up) domain", "pass a domain of the backbone's kind")
    if not ck.expect(isinstance(net, nn.Module), "build returns an nn.Module", f"build() returned {type(net).__name__}", "return a torch.nn.Module"):
        raise _Stop()
    return net, opts


def _check_forward(ck: _Checker, net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> None:
    """``forward(x_t, t, cond)``: x_t's shape and dtype, finite; ``cond=None`` and no ``cond`` accepted."""
    with ck.running("forward(x_t, t, cond)", "forward(x_t, t, cond=None) takes t as a float tensor [B] in [0, 1]"):
        out = net(x_t, t, cond)
    if not isinstance(out, torch.Tensor) or out.shape != x_t.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        ck.fail(f"forward(x_t, t, cond) returned {got} for x_t of shape {tuple(x_t.shape)}", "return a tensor shaped like x_t (the prediction)")
        raise _Stop()
    ck.ok("output has x_t's shape")
    ck.expect(out.dtype == x_t.dtype, "output has x_t's dtype", f"output dtype {out.dtype} differs from x_t's {x_t.dtype}", "return x_t's dtype (cast at the end)")
    ck.expect(bool(torch.isfinite(out).all()), "output is finite", "forward() returned NaN or inf", "check the network's normalisations and the time input")
    with ck.running("forward(x_t, t, None)", "cond=None means unconditional (classifier-free guidance calls it): map it to a null condition", stop=False):
        out_u = net(x_t, t, None)
        ck.expect(isinstance(out_u, torch.Tensor) and out_u.shape == x_t.shape, "accepts cond=None",
                  f"forward(x_t, t, None) returned {getattr(out_u, 'shape', type(out_u).__name__)}", "return x_t's shape for cond=None too")
    with ck.running("forward(x_t, t) without cond", "give cond a default: def forward(self, x, t, cond=None) (the loss calls model(x_t, t) for unconditional data)", stop=False):
        net(x_t, t)
        ck.ok("cond has a default")


def _perturbed(net: nn.Module, seed: int = 0) -> nn.Module:
    """A copy with every parameter moved a little: zero-initialised output layers (common in
    diffusion backbones) would otherwise hide how the output depends on its inputs."""
    other = copy.deepcopy(net)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            if p.is_floating_point():
                p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))
    return other


def _check_dependence(ck: _Checker, net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, domain: Domain, batch: Mapping) -> None:
    """The output depends on ``t`` and on ``x_t`` (with slightly perturbed weights)."""
    cond, b = batch.get("cond"), x_t.shape[0]
    moved = _perturbed(net)
    moved.eval()
    base_out = moved(x_t, t, cond)
    scale = float(base_out.abs().max()) + 1e-12
    dt = 0.0
    for t2 in ((t.flip(0) if b > 1 else 1.0 - t), (t + 0.3) % 1.0):
        dt = max(dt, float((moved(x_t, t2, cond) - base_out).abs().max()))
    ck.expect(dt > 1e-6 * scale, "output depends on t", "the output does not depend on t (checked with slightly perturbed weights)",
              "feed the time to the network, e.g. through diffcore.nn.TimeEmbedding")
    x_other = x_t + domain.noise(batch["x"], batch, generator=torch.Generator().manual_seed(1))
    dx = float((moved(x_other, t, cond) - base_out).abs().max())
    ck.expect(dx > 1e-6 * scale, "output depends on x_t", "the output does not depend on x_t", "use x_t in forward()")


def _check_training_step(ck: _Checker, net: nn.Module, domain: Domain, batch: Mapping) -> None:
    """One step of diffcore's loss: finite, with finite gradients reaching the parameters."""
    from ..math.losses import DiffusionLoss

    net.train()
    with ck.running("DiffusionLoss(...)(net, x0, cond, mask).backward()", "the backbone must train with diffcore's loss"):
        loss_fn = DiffusionLoss(_schedules.get("cosine"), prediction="eps")
        loss = loss_fn(net, batch["x"], cond=batch.get("cond"), mask=batch.get("mask"), noise_fn=lambda like: domain.noise(like, batch),
                       generator=torch.Generator().manual_seed(0))
        net.zero_grad()
        loss.backward()
    ck.expect(bool(torch.isfinite(loss.detach())), "loss is finite", f"the training loss is {float(loss.detach())}", "check the network's output scale")
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    grads = [p.grad for _, p in params if p.grad is not None]
    ck.expect(bool(grads) and any(bool((gr != 0).any()) for gr in grads), "gradients reach the parameters",
              "no parameter received a gradient", "make the output depend on trainable parameters")
    ck.expect(all(bool(torch.isfinite(gr).all()) for gr in grads), "gradients are finite", "some gradients are NaN or inf")
    unused = [n for n, p in params if p.grad is None]
    if unused:
        ck.warn(f"{len(unused)} parameter tensor(s) got no gradient from a training step (e.g. {', '.join(unused[:3])}): "
                "DDP training (--strategy ddp, which does not look for unused parameters) stops with 'Expected to have finished "
                "reduction in the prior iteration'; remove them, or use them in forward()")


def _check_rebuilt(ck: _Checker, spec: BackboneSpec, net: nn.Module, opts: BaseModel, domain: Domain,
                   x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> None:
    """Rebuilt from the domain's saved state, as ``diffcore sample`` does: the weights load and agree."""
    from ..platform import runs

    net.eval()
    tmp = ck.tmpdir()
    with ck.running("rebuilding from the domain's saved state and loading the weights",
                    "build() must give the same architecture from a domain restored with load_state_dict() (no setup()); "
                    "keep what it needs in state_dict()"):
        fresh = type(domain)(domain.options, workdir=tmp / "cache")
        fresh.load_state_dict(json.loads(json.dumps(domain.state_dict())))
        torch.manual_seed(1)
        net2 = spec.build(opts, fresh)
        runs.save_weights(net, tmp / "w.safetensors")
        runs.load_weights(net2, runs.read_weights(tmp / "w.safetensors"), tmp / "w.safetensors")
    net2.eval()
    with torch.no_grad():
        same = torch.allclose(net2(x_t, t, cond), net(x_t, t, cond), atol=1e-5, rtol=1e-4)
    ck.expect(same, "rebuilt backbone reproduces the outputs",
              "the backbone rebuilt from saved weights gives different outputs", "keep every tensor the output depends on in parameters or registered buffers")
