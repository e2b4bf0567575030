"""Samples and evaluations of a run, on one process or sharded over several.

Every sample's noise comes from a generator of its own, seeded from (the seed, the sample's
index) (:func:`sample_seed`): the initial noise and every stochastic step of sample ``i`` are
the same whatever batch it falls in and whichever process draws it. So ``diffcore sample``
writes the same files on one process or on N (bit for bit: the batches are the same, process
``r`` generates batches ``r, r + N, ...``), and the same samples at another ``--batch-size``
up to the rounding of batched arithmetic. ``diffcore evaluate`` lets the domain drive its loop
on every process; each call's batch is split by rows over the processes and gathered back.

Processes are started by Lightning Fabric (``devices``, ``num_nodes``; under torchrun or SLURM
it joins the processes the launcher started), nothing home-made; without several processes
no process group is made at all.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from ..contract.domain import Batch, Domain
from ..contract.errors import UserError
from ..math.sampling import SamplingPlan
from . import runs


def sample_seed(seed: int, index: int, stream: int = 0) -> int:
    """The seed of sample ``index``'s noise under ``seed`` (``stream`` 1: of a batch's other
    draws): numpy's SeedSequence of the three, so nearby seeds and indices give unrelated streams."""
    a, b = np.random.SeedSequence([int(seed), int(index), int(stream)]).generate_state(2, np.uint32)
    return (int(a) << 31) ^ int(b)


def rows(batch: Batch, lo: int, hi: int) -> Batch:
    """Examples ``lo:hi`` of a sampling batch: its tensors whose first dimension is the batch
    (also inside mappings, e.g. a molecule's ``cond``) are sliced, ``shape`` follows, anything
    else (a writer's lists, constants) is kept as it is."""
    n = tuple(batch["shape"])[0]

    def cut(v: Any) -> Any:
        if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == n:
            return v[lo:hi]
        if isinstance(v, dict):
            return {k: cut(u) for k, u in v.items()}
        return v

    out = {k: cut(v) for k, v in batch.items() if k != "shape"}
    out["shape"] = (hi - lo, *tuple(batch["shape"])[1:])
    return out


def per_sample_noise(domain: Domain, batch: Batch, seed: int, first: int, device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The noise function of a batch whose examples are samples ``first, first + 1, ...``:
    row ``i`` is drawn by ``domain.noise`` from sample ``first + i``'s own generator."""
    n = tuple(batch["shape"])[0]
    gens = [torch.Generator(device=device).manual_seed(sample_seed(seed, first + i)) for i in range(n)]
    single = [rows(batch, i, i + 1) for i in range(n)]

    def draw(like: torch.Tensor) -> torch.Tensor:
        return torch.cat([domain.noise(like[i : i + 1], single[i], generator=gens[i]) for i in range(n)])

    return draw


@dataclass
class World:
    """The processes generating together: this one's ``rank`` of ``size``, and the Fabric
    that connects them (``None`` for one process)."""

    rank: int = 0
    size: int = 1
    fabric: Any = None

    @property
    def device(self) -> torch.device | None:
        return None if self.fabric is None else self.fabric.device

    def gather(self, flat: torch.Tensor, length: int, *, to_first: bool = False) -> torch.Tensor | None:
        """Every process's 1-D ``flat`` (at most ``length`` long), as ``(size, length)``: on
        every rank, or with ``to_first`` on rank 0 only (``None`` elsewhere: one copy of the samples)."""
        if self.fabric is None:
            return flat[None]
        padded = torch.zeros(length, dtype=flat.dtype, device=self.fabric.device)
        padded[: flat.numel()] = flat.to(self.fabric.device)
        receives = not to_first or self.rank == 0
        parts = [torch.empty_like(padded) for _ in range(self.size)] if receives else None
        try:  # the plain collectives: no autograd here
            if to_first:
                torch.distributed.gather(padded, parts, dst=0)
            else:
                torch.distributed.all_gather(parts, padded)
        except RuntimeError as e:
            self.died(e)
        return torch.stack(parts).cpu() if receives else None

    def died(self, e: BaseException):
        """Another process died (gloo/NCCL report it here): one line, as a training run's, exit 1."""
        from . import ddp_failure

        ddp_failure.report(None, self.rank, self.size, ddp_failure.reason(e, self.size) or str(e).splitlines()[0])
        raise SystemExit(ddp_failure.EXIT)

    def close(self) -> None:
        if self.fabric is not None and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def launch(accelerator: str = "auto", devices: int = 1, num_nodes: int = 1, what: str = "sampling") -> World:
    """The processes for ``devices`` x ``num_nodes``: this process alone when that is one,
    else Lightning Fabric's DDP launch (it starts the other local processes by running the same
    command line again, or joins those torchrun/SLURM started)."""
    from . import ddp_failure, nodes

    if devices * num_nodes == 1:
        started = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if nodes.cluster_launched() and started > 1:  # torchrun/srun started several: each would do the whole job
            raise UserError(f"this is one of {started} processes torchrun/srun started, but --devices {devices} --num-nodes {num_nodes} "
                            "asks for one: pass --devices (processes per node) and --num-nodes as the launcher has them")
        return World()
    from lightning.fabric import Fabric

    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    try:
        fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy="ddp")
    except Exception as e:  # MisconfigurationException, ValueError: no such accelerator here
        raise UserError(f"--accelerator/--devices/--num-nodes: {e}") from None
    runs.keep_threads()
    ddp_failure.watch(None, devices * num_nodes, what, "nothing was written; run the command again")
    fabric.launch()
    return World(fabric.global_rank, fabric.world_size, fabric)


def _flat(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([x.reshape(-1).float() for x in xs]) if xs else torch.zeros(0)


def sample(
    run: runs.Run,
    plan: SamplingPlan,
    num: int,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    classes: Sequence[str | int] | None = None,
    options: BaseModel | None = None,
    out_dir: Path | None = None,
    progress: bool = True,
    world: World | None = None,
) -> list[tuple[torch.Tensor, Batch]]:
    """Generate ``num`` samples from a run as ``plan`` says (:func:`diffcore.platform.config.
    sampling_plan`): ``[(x, batch)]`` for ``domain.write_samples``, on rank 0 of ``world``
    (the other ranks get ``[]``: they generate their share and hand it over). ``num``, and the
    memory its samples will take (and the free space of ``out_dir``, where the caller writes
    them), are checked before any work (:mod:`.budget`); ``progress``: lines on stderr when it
    takes long (:mod:`.progress_lines`)."""
    from . import budget, progress_lines

    world = world or World()
    budget.check_count(num)
    ids = runs.class_ids(run.domain, classes)
    with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as it was
        torch.manual_seed(seed)  # a domain may draw from the global RNG (e.g. which classes): the same on every rank
        batches = run.domain.sample_batches(num, batch_size or run.config.sampling.batch_size, classes=ids, options=options)
        batches = budget.checked_batches(batches, num, what=f"--num {num}", out_dir=out_dir)
    starts = np.cumsum([0] + [tuple(b["shape"])[0] for b in batches]).tolist()
    owned = [list(range(r, len(batches), world.size)) for r in range(world.size)]  # rank r: batches r, r + size, ...
    mine = owned[world.rank]
    made = {}
    for batch, j in zip(progress_lines.track([batches[j] for j in mine], "sampling", progress and world.rank == 0), mine):
        with torch.no_grad():  # rank 0's progress: its share of the batches
            made[j] = runs.generate_batch(run.net, plan, run.domain, batch, device=run.device, seed=seed, first=starts[j]).cpu()
    if world.size > 1:
        made = _gather(world, batches, made, owned)
    return [(made[j], b) for j, b in enumerate(batches)] if world.rank == 0 else []


def _gather(world: World, batches: list[Batch], made: dict[int, torch.Tensor], owned: list[list[int]]) -> dict[int, torch.Tensor]:
    """Rank 0 receives every rank's batches (``owned[r]``: rank r's; in float32, as generated);
    the others keep none."""
    sizes = [math.prod(tuple(b["shape"])) for b in batches]
    length = max(sum(sizes[j] for j in js) for js in owned)
    dtype = next(iter(made.values())).dtype if made else torch.float32
    every = world.gather(_flat([made[j] for j in owned[world.rank]]), length, to_first=True)
    if world.rank != 0:
        return {}
    out = {}
    for r, js in enumerate(owned):
        at = 0
        for j in js:
            out[j] = every[r, at : at + sizes[j]].reshape(tuple(batches[j]["shape"])).to(dtype)
            at += sizes[j]
    return out


def evaluate(run: runs.Run, plan: SamplingPlan | None = None, num: int = 512, *, seed: int = 0, batch_size: int | None = None,
             progress: bool = True, world: World | None = None, **overrides) -> dict[str, Any]:
    """The domain's metrics for this run, recorded in ``RUN/metrics.json`` (:mod:`.records`: one
    record per sampler, steps, spacing, options, guidance, seed, num and weights; the same key
    replaces its record), from samples generated in batches of ``batch_size`` (default: the
    run's ``sampling.batch_size``), each batch's rows shared over the ranks of ``world``. Returns
    the record as a flat mapping: the metrics and ``evaluated_with`` (rank 0 writes it).
    ``num`` and the memory of its samples are checked before any work (:mod:`.budget`);
    ``progress``: lines on stderr when it takes long (:mod:`.progress_lines`)."""
    from ..contract import legacy
    from . import budget, progress_lines, records

    world = world or World()
    budget.check_evaluation(run.domain, num)
    plan = runs.resolve_plan(run, plan, overrides)
    path = run.dir / runs.METRICS_JSON
    if world.rank == 0:
        records.load_keeping_bad(path)  # before the work: an unreadable file is set aside as metrics.json.bad
    torch.manual_seed(seed)  # a domain may draw from the global RNG (e.g. which classes)
    bs = batch_size or run.config.sampling.batch_size
    fn = _evaluation_fn(run, plan, seed, world)
    if progress and world.rank == 0:
        fn = progress_lines.counting(fn, "evaluating", num, bs)
    evaluated_with = {**plan.record(), "num": num, "seed": seed, "weights": str(run.weights)}
    settings = run.domain.sampling_settings()
    if settings:  # absent for a domain without any: the keys of its records are unchanged
        evaluated_with["domain"] = dict(settings)
    # the domain writes into a fresh folder that becomes this evaluation's own, RUN/eval/records/ID
    # (ID: its record's key) once it has succeeded, so neither another evaluation nor a failed
    # rerun of this one loses its files; RUN/eval then holds a copy of the latest
    latest = run.dir / "eval"
    own = latest / "records" / records.record_id(evaluated_with)
    if world.rank == 0:
        own.parent.mkdir(parents=True, exist_ok=True)
        out_dir = Path(tempfile.mkdtemp(dir=own.parent, prefix=own.name + ".partial-"))
    else:
        out_dir = Path(tempfile.mkdtemp(prefix="diffcore-eval-"))  # one writer of RUN/eval
    try:
        metrics = dict(legacy.evaluate(run.domain, fn, num, out_dir, bs))
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    if world.rank != 0:
        shutil.rmtree(out_dir, ignore_errors=True)
    record = records.make_record(evaluated_with, metrics)
    if world.rank == 0:
        (out_dir / "evaluated_with.json").write_text(json.dumps(evaluated_with, indent=1, sort_keys=True, default=str))
        shutil.rmtree(own, ignore_errors=True)  # the same settings again: their files are replaced, as their record is
        os.replace(out_dir, own)
        records.save(path, records.upsert(records.load_keeping_bad(path), record), record)
        _copy_latest(own, latest)
    return records.flat_view(record)


def _copy_latest(own: Path, latest: Path) -> None:
    """Make ``latest`` (RUN/eval) hold exactly the files of the evaluation in ``own``, beside
    ``records/``. What an earlier evaluation left there is a copy of its own folder and goes;
    files without an ``evaluated_with.json`` beside them (written before evaluations had their
    own folders) are moved to ``records/before-<time>`` rather than lost."""
    stale = [e for e in latest.iterdir() if e.name != "records"]
    if stale and not (latest / "evaluated_with.json").is_file():
        keep = latest / "records" / time.strftime("before-%Y%m%d-%H%M%S")
        keep.mkdir(parents=True, exist_ok=True)
        for entry in stale:
            shutil.move(str(entry), str(keep / entry.name))
    else:
        for entry in stale:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for entry in own.iterdir():
        if entry.is_dir():
            shutil.copytree(entry, latest / entry.name)
        else:
            shutil.copy2(entry, latest / entry.name)


def _evaluation_fn(run: runs.Run, plan: SamplingPlan, seed: int, world: World) -> Callable[[Batch], torch.Tensor]:
    """What the domain's ``evaluate`` calls: the samples of a batch, numbered on from the last
    call's; over several ranks each generates a contiguous share of the rows."""
    count = [0]

    def fn(batch: Batch) -> torch.Tensor:
        n = tuple(batch["shape"])[0]
        first, count[0] = count[0], count[0] + n
        share = math.ceil(n / world.size)
        lo, hi = min(n, world.rank * share), min(n, (world.rank + 1) * share)
        with torch.no_grad():
            x = runs.generate_batch(run.net, plan, run.domain, rows(batch, lo, hi), device=run.device, seed=seed, first=first + lo) \
                if hi > lo else torch.zeros(0)
        if world.size == 1:
            return x.cpu()
        per = math.prod(tuple(batch["shape"])[1:])
        every = world.gather(_flat([x.cpu()]), share * per)
        parts = [every[r, : (min(n, (r + 1) * share) - min(n, r * share)) * per] for r in range(world.size)]
        return torch.cat(parts).reshape(tuple(batch["shape"]))

    return fn
