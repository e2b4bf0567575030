"""``training.strategy: fsdp``: the backbone and its EMA sharded over the processes.

PyTorch's FSDP2 (``fully_shard``) through Lightning's ``ModelParallelStrategy``, on GPUs
(NCCL) and on CPU (gloo): Lightning's ``fsdp`` strategy (FSDP1) refuses CPU, and FSDP1
flattens parameters, which the EMA update could not follow. Each process holds a shard of the
parameters, gradients and optimiser state; a forward all-gathers them. The EMA copy is
sharded the same way, so its update is shard by shard, with no communication.

What leaves the processes is whole: the checkpoint holds the full state dict (rank 0 writes
it, ``save_distributed_checkpoint=False``), so ``diffcore sample`` loads it like any other,
and the safetensors weights and previews come from the full EMA weights gathered to rank 0
(:func:`full_state`), run there by an unsharded copy (:func:`plain_ema`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

NAME = "fsdp"


def strategy(name: str, world: int) -> Any:
    """The Lightning strategy for ``training.strategy``: ``fsdp`` as FSDP2 data parallel over
    ``world`` processes; any other name is Lightning's own."""
    if name != NAME:
        return name
    from lightning.pytorch.strategies import ModelParallelStrategy

    return ModelParallelStrategy(data_parallel_size=world, tensor_parallel_size=1, save_distributed_checkpoint=False)


def active(module) -> bool:
    """Whether ``module`` (the LightningModule) trains under :func:`strategy` ``fsdp``."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    trainer = getattr(module, "_trainer", None)
    return trainer is not None and isinstance(trainer.strategy, ModelParallelStrategy)


def shard(module) -> None:
    """``configure_model``'s work under ``fsdp``: the backbone and the EMA copy each as one
    FSDP unit over the data-parallel mesh (one unit works for any backbone: units per block
    would need to know which submodules are called). Rank 0 keeps an unsharded copy of the
    EMA for previews. Idempotent (Lightning may call it again)."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if not active(module) or isinstance(module.backbone, FSDPModule):
        return
    if module.global_rank == 0:
        module.__dict__["_plain_ema"] = copy.deepcopy(module.ema)  # not a submodule: not sharded, not in checkpoints
    mesh = module.device_mesh["data_parallel"]
    fully_shard(module.backbone, mesh=mesh)
    fully_shard(module.ema, mesh=mesh)


def full_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """``net``'s full state dict: gathered from the shards to rank 0's CPU (a collective: every
    rank calls it, all but rank 0 get ``{}``) or, unsharded, its own (``runs.save_weights``
    copies it to the CPU)."""
    from torch.distributed.fsdp import FSDPModule

    if not isinstance(net, FSDPModule):
        return net.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(net, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return state if torch.distributed.get_rank() == 0 else {}


def plain_ema(module) -> nn.Module:
    """The EMA network previews run: the module's own, or under ``fsdp`` (on rank 0, after
    every rank called :func:`full_state` of it) the unsharded copy holding those weights."""
    plain = module.__dict__.get("_plain_ema")
    if plain is None:
        return module.ema
    state = module.__dict__.pop("_ema_state", None)  # one full copy at a time: the gathered one goes into the network
    if state is not None:
        plain.load_state_dict(state)
    return plain.to(module.device)


def release(module) -> None:
    """After previews: the unsharded EMA copy back to the CPU (off the GPU the shards need)."""
    plain = module.__dict__.get("_plain_ema")
    if plain is not None:
        plain.to("cpu")


def gather_ema(module) -> None:
    """Every rank's part of :func:`plain_ema`: the EMA's full weights, kept on rank 0."""
    if active(module):
        state = full_state(module.ema)
        if state:
            module.__dict__["_ema_state"] = state
