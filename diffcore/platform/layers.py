"""The layers of a run config: ``--set KEY=VALUE`` items, and merging one layer over another.

Mappings are merged key by key; any other value replaces the one below it. One exception:
a layer that changes ``diffusion.schedule`` drops the ``diffusion.schedule_options`` of the
layers below, which were meant for another schedule (likewise ``sampling.options`` for a new
``sampling.sampler`` and ``sampling.guidance_options`` for a new ``sampling.guidance_variant``).
Used by :mod:`.config` (diffusion runs) and :mod:`.autoencoder_run` (autoencoder runs).
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from diffcore.contract.errors import UserError


def parse_set(item: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> (["a", "b"], value parsed as YAML)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. --set training.lr=1e-3")
    path = key.split(".")
    if any(not p for p in path):
        raise UserError(f"--set {item!r}: empty part in key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise UserError(f"--set {item!r}: the value is not valid YAML ({getattr(e, 'problem', e)}); quote strings that contain ':' or '#'") from None
    return path, value


def _set_path(d: dict, path: list[str], value: Any, origin: str) -> None:
    cur = d
    for i, part in enumerate(path[:-1]):
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        if not isinstance(nxt, dict):
            raise UserError(f"{origin}: '{'.'.join(path[: i + 1])}' is a value, not a section; cannot set '{'.'.join(path)}'")
        cur = nxt
    cur[path[-1]] = value


def sets_to_dict(sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Repeated ``--set`` items as one nested mapping (later items win)."""
    out: dict[str, Any] = {}
    for item in sets:
        path, value = parse_set(item)
        _set_path(out, path, value, f"--set {item!r}")
    return out


def merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base`` (see the module docstring for the rule on schedules)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    bd, od = base.get("diffusion"), over.get("diffusion")
    if isinstance(bd, dict) and isinstance(od, dict) and "schedule" in od and od["schedule"] != bd.get("schedule"):
        # Another schedule: the options below were meant for the old one.
        out["diffusion"]["schedule_options"] = copy.deepcopy(od.get("schedule_options", {}))
    bs, os_ = base.get("sampling"), over.get("sampling")
    if isinstance(bs, dict) and isinstance(os_, dict) and "sampler" in os_ and os_["sampler"] != bs.get("sampler"):
        # Another sampler: the options below were meant for the old one.
        out["sampling"]["options"] = copy.deepcopy(os_.get("options", {}))
    if isinstance(bs, dict) and isinstance(os_, dict) and "guidance_variant" in os_ and os_["guidance_variant"] != bs.get("guidance_variant", "cfg"):
        # Another guidance variant: likewise for its options.
        out["sampling"]["guidance_options"] = copy.deepcopy(os_.get("guidance_options", {}))
    return out
