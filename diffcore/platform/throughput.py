"""Settings that make training steps faster without changing what is trained:
``training.compile`` (torch.compile of the backbone) and ``training.channels_last`` (the
channels-last memory format for 4-D tensors). Both leave the weights' names and values as they
are, so checkpoints and safetensors hold the plain backbone and load anywhere. The core stays
domain-agnostic: channels-last applies to 4-D tensors only (images: batch, channels, height,
width), whatever the domain. Measured figures: ``benchmarks/throughput.py``.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import IterableDataset

from ..contract.errors import UserError


def to_channels_last(value: Any) -> Any:
    """``value`` (a batch: tensors, mappings, lists) with every 4-D tensor in channels-last format."""
    if isinstance(value, torch.Tensor):
        return value.contiguous(memory_format=torch.channels_last) if value.dim() == 4 else value
    if isinstance(value, dict):
        return {k: to_channels_last(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not isinstance(value, str):
        return type(value)(to_channels_last(v) for v in value)
    return value


def prepare_backbone(net: nn.Module, tc) -> nn.Module:
    """The backbone in the memory format ``tc`` (a ``TrainingConfig``) asks for; before the EMA
    copy is made, so both have it. ``Module.to(memory_format=...)`` changes 4-D weights only."""
    return net.to(memory_format=torch.channels_last) if tc.channels_last else net


def compile_backbone(module, loader, trainer) -> float:
    """torch.compile ``module.backbone`` in place (``nn.Module.compile``: its ``state_dict`` keys
    stay plain, never ``_orig_mod.``) and compile it now, on a batch of the loader's first examples
    on the training device, so a machine where torch.compile cannot run (no C++ compiler on CPU, no triton on a
    GPU) is refused with one line before the run's files are written. The random streams are
    left as they were and no gradient is kept. Returns the seconds it took."""
    from torch._dynamo.exc import TorchDynamoException

    net = module.backbone
    device = trainer.strategy.root_device
    module.to(device)
    net.compile()
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []), \
            trainer.precision_plugin.train_step_context():
        batch = module.on_after_batch_transfer(module.transfer_batch_to_device(first_batch(loader), device, 0), 0)
        try:
            module.loss(batch).backward()
        except TorchDynamoException as e:
            cause = getattr(e, "inner_exception", None) or e  # the backend's own error (inductor's)
            first = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
            raise UserError(f"training.compile: torch.compile cannot compile the backbone on this machine "
                            f"({type(cause).__name__}{': ' + first if first else ''}); "
                            "set training.compile=false, or install what it needs (a C++ compiler for CPU training, "
                            "triton for GPUs)") from None
        finally:
            net.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def first_batch(loader) -> dict:
    """A batch of the loader's size from the data set's first examples (in order, whether the
    data set is indexed or a stream), for :func:`compile_backbone`."""
    ds = loader.dataset
    if isinstance(ds, IterableDataset):
        return loader.collate_fn(list(itertools.islice(iter(ds), loader.batch_size)))
    return loader.collate_fn([ds[i] for i in range(min(loader.batch_size, len(ds)))])
