"""A domain's sampling side: ``sample_batches``, ``write_samples``, ``val_dataset``, ``evaluate``.
They run on a domain restored from its saved state without ``setup()``, as ``diffcore sample``
rebuilds a run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..contract import legacy
from ..contract.domain import Domain
from .domain_data import check_cond, check_mask
from .report import _Checker, _Stop


def _batches_of(ck: _Checker, dom: Domain, num: int, what: str, **kw) -> list[dict]:
    with ck.running(what, "sample_batches(num, batch_size, classes=None, options=None) must yield batch dicts"):
        out = list(dom.sample_batches(num, 2, **kw))
    if not out:
        ck.fail(f"{what} yielded nothing", f"yield batches covering {num} samples")
        raise _Stop()
    return out


def _shape(ck: _Checker, b: Any, where: str) -> tuple[int, ...]:
    if not isinstance(b, Mapping) or "shape" not in b:
        ck.fail(f"{where} has no 'shape'", 'yield {"shape": (b, ...), "cond": ..., "mask": ...}')
        raise _Stop()
    try:
        return tuple(int(s) for s in b["shape"])
    except (TypeError, ValueError):
        ck.fail(f"{where}: shape {b['shape']!r} is not a tuple of ints", "give the full shape of x, batch dimension first")
        raise _Stop() from None


def check_sample_batches(ck: _Checker, fresh: Domain, num: int, sopts: Any, labels: Any,
                         example_shape: tuple[int, ...] | None) -> None:
    """``sample_batches`` (plain, with the SampleOptions defaults, with a class): consistent
    ``shape``/``cond``/``mask`` in batches of at most 2, covering ``num``."""
    calls = [("sample_batches(5, 2) on a restored domain", {})]
    if sopts is not None:
        calls.append(("sample_batches(5, 2, options=SampleOptions())", {"options": sopts}))
    if labels:
        calls.append(("sample_batches(5, 2, classes=[0])", {"classes": [0]}))
    for what, kw in calls:
        total = 0
        for j, b in enumerate(_batches_of(ck, fresh, num, what, **kw)):
            where = f"{what}, batch {j}"
            shape = _shape(ck, b, where)
            ck.expect(1 <= shape[0] <= 2, f"{where}: batch size within batch_size", f"{where}: {shape[0]} samples in a batch of at most 2", "respect batch_size")
            if example_shape is not None:
                ck.expect(shape[1:] == example_shape, f"{where}: shape matches the training data",
                          f"{where}: sampling shape {shape[1:]} differs from the training examples' {example_shape}", "sample tensors shaped like the data")
            check_mask(ck, b.get("mask"), shape, where)
            check_cond(ck, b.get("cond"), shape[0], where)
            total += shape[0]
        ck.expect(total >= num and total % num == 0, f"{what}: covers num",
                  f"{what}: the batches hold {total} samples, not {num} (or {num} per requested item)", f"yield batches covering num={num} samples")


def _noised(dom: Domain, b: Mapping, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Stand-in samples for a sampling batch: the domain's noise, scaled, within [-1, 1]."""
    like = torch.zeros(tuple(int(s) for s in b["shape"]))
    return (scale * dom.noise(like, b, generator=torch.Generator().manual_seed(seed))).clamp(-1, 1)


def _old_form(ck: _Checker, dom: Domain, method: str) -> bool:
    """Whether ``method`` has the old form of the contract (then called in it, with a warning)."""
    if legacy.takes_new_form(dom, method):
        return False
    ck.warn(f"{method} has the old signature; define {legacy.NEW_FORMS[method][0]} (the old form still works, deprecated)")
    return True


def check_write_samples(ck: _Checker, fresh: Domain, num: int, sopts: Any, root: Path) -> None:
    """``write_samples(results, out_dir, options)`` writes non-empty files inside ``out_dir``
    and returns their paths."""
    batches = _batches_of(ck, fresh, num, "sample_batches for write_samples", **({"options": sopts} if sopts is not None else {}))
    out_dir = root / "samples"
    out_dir.mkdir(parents=True, exist_ok=True)
    with ck.running("noise for sampling batches"):
        results = [(_noised(fresh, b, 7, 0.5), b) for b in batches]
    _old_form(ck, fresh, "write_samples")
    with ck.running("write_samples(results, out_dir, options)", "write the samples as files under out_dir and return their paths"):
        paths = legacy.write_samples(fresh, results, out_dir, sopts)
    if not isinstance(paths, (list, tuple)) or not paths:
        ck.fail(f"write_samples() returned {paths!r}", "return the list of paths written (a non-empty list of Path)")
        return
    base = out_dir.resolve()
    for p in map(Path, paths):
        inside = base == p.resolve() or base in p.resolve().parents
        ck.expect(p.is_file() and p.stat().st_size > 0 and inside, f"write_samples wrote {p.name}",
                  f"write_samples() returned {p}, which is not a non-empty file inside out_dir", "write every file under out_dir and return its path")


def check_val_dataset(ck: _Checker, domain: Domain) -> None:
    with ck.running("val_dataset()", stop=False):
        val = domain.val_dataset()
        if val is not None:
            item = val[0]
            ck.expect(isinstance(item, Mapping) and isinstance(item.get("x"), torch.Tensor), "val_dataset items have x",
                      "val_dataset()[0] is not a dict with a tensor 'x'", "return items like train_dataset's, or None")


def check_evaluate(ck: _Checker, domain: Domain, fresh: Domain, root: Path, batch_size: int = 4) -> None:
    """``evaluate(sample_fn, 8, out_dir, 4)`` on noise "samples" returns ``{name: number}`` and
    asks ``sample_fn`` for batches of at most 4."""
    eval_dir = root / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    sizes: list[int] = []

    def sample_fn(b: Mapping) -> torch.Tensor:
        x = _noised(fresh, b, 3)
        sizes.append(len(x))
        return x

    old = _old_form(ck, domain, "evaluate")
    with ck.running(f"evaluate(sample_fn, 8, out_dir, {batch_size})", "compute metrics from sample_fn(batch) and return {name: number}"):
        metrics = legacy.evaluate(domain, sample_fn, 8, eval_dir, batch_size)
    if not old:
        ck.expect(max(sizes, default=0) <= batch_size, "evaluate respects batch_size",
                  f"evaluate(..., batch_size={batch_size}) asked sample_fn for a batch of {max(sizes, default=0)}",
                  "generate in batches of at most batch_size, e.g. self.sample_batches(num, batch_size)")
    good = isinstance(metrics, Mapping) and all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in metrics.items())
    ck.expect(good, "evaluate returns {name: number}", f"evaluate() returned {metrics!r}", "return a flat dict of str -> float (written to metrics.json)")
