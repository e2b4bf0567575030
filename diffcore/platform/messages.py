"""Readable messages for configuration errors: pydantic's error locations turned into key paths
(``training.lr: Input should be greater than 0 (got -1)``), the allowed keys of a section,
and "did you mean" suggestions."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


def _did_you_mean(name, valid) -> str:
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _sub_model(annotation) -> type[BaseModel] | str | tuple | None:
    """The model a field holds (also inside ``X | None``), ("items", model) for a list of
    models, "container" for other dicts and lists, None for a leaf value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        found = [_sub_model(a) for a in typing.get_args(annotation) if a is not type(None)]
        models = [f for f in found if isinstance(f, type)]
        if models:
            return models[0]
        return "container" if "container" in found else None
    if origin is list and isinstance(_sub_model(typing.get_args(annotation)[0]), type):
        return ("items", _sub_model(typing.get_args(annotation)[0]))  # a list of sections: key[i].field
    if origin in (dict, list, tuple, set, frozenset) or annotation in (dict, list, tuple):
        return "container"
    return None


def _walk(model: type[BaseModel], loc: tuple) -> tuple[list[str], type[BaseModel] | None]:
    """pydantic's error location without its union/validator tags, and the model that holds
    the last key (for listing the allowed keys)."""
    path: list[str] = []
    cur: Any = model
    parent: type[BaseModel] | None = model
    for part in loc:
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            parent = cur
            path.append(str(part))
            field = _field(cur, part)
            cur = _sub_model(field.annotation) if field is not None else None
        elif isinstance(cur, tuple) and isinstance(part, int):
            path[-1] += f"[{part}]"
            cur = cur[1]
        elif cur == "container":
            path.append(str(part))
            cur = "container-item"
        elif cur == "container-item":
            path.append(str(part))
        else:
            break  # a leaf's union tag ('int', "literal['auto']"): not part of the key
    return path, parent


def _field(model: type[BaseModel], key: Any):
    """The field ``key`` names in ``model`` (by its alias, e.g. ``class``, or its name)."""
    if not isinstance(key, str):
        return None
    return model.model_fields.get(key) or next((f for f in model.model_fields.values() if f.alias == key), None)


def format_errors(err: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """One line per problem: ``key.path: what is wrong``."""
    lines: list[str] = []
    for e in err.errors():
        path, parent = _walk(model, e["loc"])
        key = ".".join(([prefix] if prefix else []) + path) or (prefix or "config")
        if e["type"] == "extra_forbidden":
            allowed = [f.alias or n for n, f in parent.model_fields.items()] if parent is not None else []
            line = f"unknown key '{key}' (allowed: {', '.join(allowed) or 'none'})" + _did_you_mean(path[-1] if path else "", allowed)
        elif e["type"] == "missing":
            line = f"{key}: required key is missing"
        else:
            line = f"{key}: {e['msg']}"
            if e["type"] not in ("model_type", "dict_type") and not isinstance(e.get("input"), (dict, list)):
                line += f" (got {e.get('input')!r})"
        if line not in lines:  # a union reports each alternative; one line per key is enough
            lines.append(line)
    head = "invalid configuration:" if len(lines) > 1 else ""
    return "\n  ".join([head] + lines) if head else lines[0]
