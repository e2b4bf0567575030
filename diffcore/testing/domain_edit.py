"""A domain's editing side (optional): ``edit_batches`` gives sampling batches with ``known``
(the input, shaped like the batch) and ``keep`` (binary, broadcastable), and ``write_edits``
writes files inside ``out_dir``. Run on a domain restored from its saved state, as ``diffcore
edit`` rebuilds a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..contract.domain import Domain
from .domain_data import check_cond, check_mask
from .domain_sampling import _shape
from .options import validated
from .report import _Checker


def check_edit(ck: _Checker, fresh: Domain, inputs: Sequence[str] | None, options: Any, root: Path) -> None:
    """``edit_batches(inputs, 2, 2, options=...)`` and ``write_edits`` when the domain supports
    editing and the kit is given ``edit_inputs``."""
    if not fresh.supports_editing():
        ck.skip("editing (the domain does not override edit_batches: `diffcore edit` says it does not support editing)")
        return
    if not inputs:
        ck.skip("edit_batches (pass edit_inputs=[a file or text of the domain's kind] and edit_options={...})")
        return
    eopts = validated(ck, fresh.EditOptions, options, "edit_options", "EditOptions") if fresh.EditOptions is not None else None
    what = f"edit_batches({list(inputs)!r}, 2, 2, options=...)"
    with ck.running(what, "edit_batches(inputs, num, batch_size, classes=None, options=None) must yield batch dicts"):
        batches = list(fresh.edit_batches(list(inputs), 2, 2, options=eopts))
    total = 0
    for j, b in enumerate(batches):
        where = f"{what}, batch {j}"
        shape = _shape(ck, b, where)
        known, keep = b.get("known"), b.get("keep")
        ck.expect(isinstance(known, torch.Tensor) and tuple(known.shape) == shape and bool(torch.isfinite(known).all()),
                  f"{where}: known is the input, shaped like the batch",
                  f"{where}: 'known' is {type(known).__name__} of shape {getattr(known, 'shape', None)}, not a finite tensor of shape {shape}",
                  "put the input, normalised like training data, under 'known' with the batch's full shape")
        if keep is not None:
            good = isinstance(keep, torch.Tensor) and bool(((keep == 0) | (keep == 1)).all())
            try:
                torch.broadcast_shapes(tuple(keep.shape), shape)
            except (RuntimeError, AttributeError):
                good = False
            ck.expect(good, f"{where}: keep is a binary mask that fits", f"{where}: 'keep' is not a binary tensor broadcastable to {shape}",
                      "1 where the input is kept, 0 where the model generates")
        check_mask(ck, b.get("mask"), shape, where)
        check_cond(ck, b.get("cond"), shape[0], where)
        total += shape[0]
    ck.expect(total == 2 * len(inputs), f"{what}: num outputs per input",
              f"{what}: the batches hold {total} samples, not 2 per input ({2 * len(inputs)})", "repeat each input num times")
    out_dir = root / "edits"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = [(b["known"].clone(), b) for b in batches if isinstance(b, Mapping) and isinstance(b.get("known"), torch.Tensor)]
    with ck.running("write_edits(results, out_dir)", "write the edited samples (and a before/after picture) under out_dir; return the paths"):
        paths = fresh.write_edits(results, out_dir)
    base = out_dir.resolve()
    ok = isinstance(paths, (list, tuple)) and bool(paths) and all(
        Path(p).is_file() and (base in Path(p).resolve().parents) for p in paths)
    ck.expect(ok, "write_edits writes files inside out_dir", f"write_edits() returned {paths!r}",
              "write every file under out_dir and return the list of paths")
