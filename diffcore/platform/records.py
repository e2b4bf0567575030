"""Evaluation records: ``RUN/metrics.json`` holds one record per way of evaluating a run.

A record is ``{"evaluated_with": {...}, "metrics": {...}, "timestamp": "..."}``, keyed by
``evaluated_with``'s (sampler, steps, spacing, options, guidance, seed, num, weights, and
the model times and the domain's sampling settings where there are any):
evaluating again with the same key replaces that record, any other key adds one. The file
is a mapping::

    {"records": [...], <the latest evaluation's metrics>, "evaluated_with": {...}}

so readers of the older flat file (``json.load(...)["some_metric"]``) keep reading the
metrics of the latest evaluation. An old flat file is read as one record.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .runfiles import write_text_atomic

KEY_FIELDS = ("sampler", "steps", "spacing", "options", "guidance", "seed", "num", "weights")
RECORDS = "records"
EVALUATED_WITH = "evaluated_with"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def make_record(evaluated_with: Mapping[str, Any], metrics: Mapping[str, Any], timestamp: str | None = None) -> dict[str, Any]:
    return {EVALUATED_WITH: dict(evaluated_with), "metrics": dict(metrics), "timestamp": timestamp or now()}


def record_key(record: Mapping[str, Any]) -> str:
    """The record's identity: its (sampler, steps, spacing, options, guidance, seed, num, weights),
    the model times where the grid was given rather than named (spacing "custom", from
    ``--times``, or "tuned", the grid of a ``sampler: auto`` row), and the domain's own sampling
    settings where it has any (:meth:`diffcore.Domain.sampling_settings`), as canonical JSON."""
    ew = record.get(EVALUATED_WITH) or {}
    key = {k: ew.get(k) for k in KEY_FIELDS}
    for extra in ("times", "domain"):  # absent from records without them: their keys are unchanged
        if ew.get(extra):
            key[extra] = ew[extra]
    return json.dumps(key, sort_keys=True, default=str)


def record_id(evaluated_with: Mapping[str, Any]) -> str:
    """A short, stable name for the record of these settings (12 hex digits of its key's
    SHA-256): the folder RUN/eval/records/ID that keeps its files."""
    return hashlib.sha256(record_key({EVALUATED_WITH: evaluated_with}).encode()).hexdigest()[:12]


def _from_flat(data: Mapping[str, Any], timestamp: str | None) -> dict[str, Any]:
    ew = data.get(EVALUATED_WITH)
    metrics = {k: v for k, v in data.items() if k not in (EVALUATED_WITH, RECORDS)}
    return make_record(ew if isinstance(ew, Mapping) else {}, metrics, timestamp)


def parse(data: Any, timestamp: str | None = None) -> list[dict[str, Any]]:
    """The records in a metrics.json's content (new or old flat format); ``timestamp`` for an old file."""
    if not isinstance(data, Mapping):
        raise ValueError("metrics.json is not a JSON object")
    recs = data.get(RECORDS)
    if recs is None:
        return [_from_flat(data, timestamp)] if data else []
    if not isinstance(recs, list) or not all(isinstance(r, Mapping) for r in recs):
        raise ValueError("metrics.json: 'records' is not a list of objects")
    return [make_record(r.get(EVALUATED_WITH) or {}, r.get("metrics") or {}, r.get("timestamp") or timestamp) for r in recs]


def load(path: str | Path) -> list[dict[str, Any]]:
    """The records of ``path`` ([] if there is none). Raises ValueError for a file that cannot be read as records."""
    path = Path(path)
    if not path.is_file():
        return []
    mtime = _dt.datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(timespec="seconds")
    return parse(json.loads(path.read_text(encoding="utf-8")), mtime)


def load_keeping_bad(path: str | Path) -> list[dict[str, Any]]:
    """:func:`load`, but an unreadable file is moved aside to ``*.json.bad`` (never lost) and counts as empty."""
    path = Path(path)
    try:
        return load(path)
    except (ValueError, UnicodeDecodeError):
        path.replace(path.with_suffix(".json.bad"))
        return []


def upsert(records: list[dict[str, Any]], record: dict[str, Any]) -> list[dict[str, Any]]:
    """``records`` with ``record`` in place of the one of the same key (at its position), else appended."""
    key = record_key(record)
    out, replaced = [], False
    for r in records:
        if record_key(r) == key:
            if not replaced:
                out.append(record)
                replaced = True
        else:
            out.append(r)
    if not replaced:
        out.append(record)
    return out


def flat_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record as the old flat mapping: its metrics plus ``evaluated_with``."""
    return {**record["metrics"], EVALUATED_WITH: record[EVALUATED_WITH]}


def document(records: list[dict[str, Any]], latest: Mapping[str, Any]) -> dict[str, Any]:
    """The content of metrics.json: the latest evaluation flat (for older readers) and every record."""
    return {**flat_view(latest), RECORDS: records}


def save(path: str | Path, records: list[dict[str, Any]], latest: Mapping[str, Any]) -> dict[str, Any]:
    doc = document(records, latest)
    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return doc


# ---------------------------------------------------------------------- table
def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={_cell(v)}" for k, v in sorted(value.items())) or "-"
    return str(value)


def table(records: list[dict[str, Any]]) -> str:
    """The records as an aligned text table, one line each (the header first)."""
    if not records:
        return "no evaluations recorded"
    cols = ["when", "sampler", "steps", "spacing", "options", "guidance", "seed", "num", "weights"]
    settings = [r[EVALUATED_WITH].get("domain") or {} for r in records]
    differ = sorted(k for k in set().union(*settings) if len({json.dumps(s.get(k), default=str) for s in settings}) > 1)
    rows = []
    for r, own in zip(records, settings):
        ew = r[EVALUATED_WITH]
        weights = ew.get("weights")
        row = [_cell(r.get("timestamp"))[:16], *(_cell(ew.get(k)) for k in cols[1:-1]), Path(weights).name if weights else "-"]
        if differ:  # the domain's sampling settings in which the records differ
            row.append(",".join(f"{k}={_cell(own[k])}" for k in differ if k in own) or "-")
        row.append("  ".join(f"{k}={_cell(v)}" for k, v in sorted(r["metrics"].items())) or "-")
        rows.append(row)
    cols += (["domain"] if differ else []) + ["metrics"]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    fmt = lambda row: "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(cols), *map(fmt, rows)])
