"""Reading a YAML config file (``--config FILE``, a run's config.yaml) as one mapping, every
problem a :class:`UserError` naming the file and, for bad YAML, the line and column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from diffcore.contract.errors import UserError


def load_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A YAML mapping from ``path`` (an empty file is an empty mapping)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {what} {path}: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e)
        raise UserError(f"{what} {path} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must hold a mapping of sections (plugin, diffusion, training, ...), not a {type(data).__name__}")
    return data

