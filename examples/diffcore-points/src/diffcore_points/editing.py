"""What ``diffcore edit --input`` accepts for points, and which coordinates it keeps.

An input is a CSV file (a header naming the columns ``x`` and ``y``, as ``samples.csv`` has,
or no header: the first two columns), a ``.npy`` array of shape ``[n, 2]`` or ``[2]``, or one
point written inline, ``X,Y``. An empty cell, ``nan`` or an empty side of ``X,Y`` is a
coordinate not given: the model generates it (``--input 0.5,`` asks for y given x = 0.5).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

import diffcore
from diffcore.errors import UserError

_NUMBER = r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf(?:inity)?)"
_INLINE = re.compile(rf"^\s*({_NUMBER})?\s*,\s*({_NUMBER})?\s*$", re.I)


class PointsEditOptions(diffcore.Options):
    """Extra options of ``diffcore edit`` for points (``--keep x``)."""

    keep: Literal["given", "x", "y", "none"] = Field(
        "given",
        description="Which coordinates of each input point are kept (the model generates the others): "
        "given: those the input gives (an empty cell or nan is generated); x or y: only that one; "
        "none: nothing (for --mode sdedit or invert, which redraw whole points).",
    )


def _number(cell: str, where: str) -> float:
    cell = cell.strip()
    if not cell:
        return math.nan
    try:
        return float(cell)
    except ValueError:
        raise UserError(f"{where}: {cell!r} is not a number (leave the cell empty, or write nan, for a coordinate to generate)") from None


def _is_number(cell: str) -> bool:
    return not cell.strip() or bool(re.fullmatch(_NUMBER, cell.strip(), re.I))


def _read_csv(path: Path, name: str) -> np.ndarray:
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise UserError(f"--input {name}: not a text file; give a CSV of points x,y or a .npy array [n, 2]") from None
    cols = (0, 1)
    if rows and not all(_is_number(c) for c in rows[0][1][:2]):  # a header
        head = [c.strip().lower() for c in rows.pop(0)[1]]
        if "x" not in head or "y" not in head:
            raise UserError(f"--input {name}: the header {','.join(head)} has no columns x and y; name them, or leave the header out")
        cols = (head.index("x"), head.index("y"))
    points = []
    for line, row in rows:
        if len(row) <= max(cols):
            raise UserError(f"--input {name} line {line}: {len(row)} column(s); a point needs x and y (an empty cell is generated)")
        points.append([_number(row[c], f"--input {name} line {line}") for c in cols])
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def read_points(spec: str) -> np.ndarray:
    """The points of one ``--input`` as ``[n, 2]`` float64, nan where a coordinate is not given."""
    path = Path(spec)
    if path.is_file():
        if path.suffix.lower() == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as e:
                raise UserError(f"--input {spec}: not a readable .npy array ({e})") from None
            if arr.dtype.kind not in "fiu" or arr.shape[-1:] != (2,) or arr.ndim > 2:
                raise UserError(f"--input {spec}: an array of {arr.dtype} with shape {list(arr.shape)}; expected numbers of shape [n, 2] (or [2])")
            points = arr.astype(np.float64).reshape(-1, 2)
        else:
            points = _read_csv(path, spec)
    elif m := _INLINE.match(spec):
        points = np.array([[float(m[1] or "nan"), float(m[2] or "nan")]])
    elif path.suffix.lower() in (".csv", ".npy", ".txt") or "/" in spec or "\\" in spec:
        raise UserError(f"--input {spec}: no such file")
    else:
        raise UserError(f"--input {spec}: no such file, and not a point X,Y (e.g. --input 0.5, keeps x = 0.5 and generates y)")
    if len(points) == 0:
        raise UserError(f"--input {spec}: no points in it")
    if np.isinf(points).any():
        raise UserError(f"--input {spec}: an infinite coordinate; give a number, or nan for a coordinate to generate")
    return points


def keep_mask(points: np.ndarray, keep: str, names: list[str]) -> np.ndarray:
    """``[n, 2]`` 0/1: which coordinates are kept under ``--keep``; ``names`` name each point
    (its input and row) in the message when a kept coordinate is missing."""
    given = np.isfinite(points)
    if keep == "given":
        return given.astype(np.float64)
    mask = np.zeros_like(points)
    if keep in ("x", "y"):
        d = "xy".index(keep)
        missing = np.flatnonzero(~given[:, d])
        if len(missing):
            raise UserError(f"{names[missing[0]]} gives no {keep}, which --keep {keep} keeps; give it, or use --keep given")
        mask[:, d] = 1.0
    return mask
