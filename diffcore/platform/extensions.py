"""Extension points of a run: Lightning callbacks (``training.callbacks``) and a logger
(``training.logger``) named in the config, created by ``diffcore train`` beside its own.

An entry names a class by import path, with keyword arguments::

    training:
      callbacks:
        - class: lightning.pytorch.callbacks.LearningRateMonitor
          args: {logging_interval: step}
      logger: tensorboard            # or csv, wandb, mlflow, {class: PATH, args: {...}}, null

A bare string is an entry without arguments. A config is data, never code: an entry can only
make diffcore import a module that Python finds installed (or on PYTHONPATH) by its dotted name
-- never a file path -- and create a class from it that is a subclass of Lightning's
``Callback`` (``training.callbacks``) or ``Logger`` (``training.logger``), checked after the
import and before anything is created; ``args`` hold plain YAML data only (numbers, strings,
booleans, null, lists, mappings). Importing a module runs its import-time code, as ``import``
does, so name only modules you trust. ``diffcore sample`` and ``diffcore.load`` never import
them: only training does.

The run's own metrics.csv (:mod:`.csvlog`) is written whatever logger is added. Every problem
is a :class:`UserError` naming the key (``training.callbacks[0].class``) and the fix, raised
by :func:`build` before anything of the run is written.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator
from pydantic_core import PydanticCustomError

from diffcore.contract.errors import UserError

_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_PLAIN = "plain YAML data only (finite numbers, strings, booleans, null, lists and mappings)"


@dataclass(frozen=True)
class ShortLogger:
    """A logger by its short name: the class, the package it needs, and its default arguments
    (``save_dir`` is the run directory unless ``args`` say otherwise)."""

    path: str
    packages: tuple[str, ...]  # importable names of the packages it can use, one is needed (none: Lightning alone)
    pip: str
    defaults: dict[str, Any] = field(default_factory=dict)
    subdir: str = ""  # save_dir below the run directory


LOGGERS = {
    "csv": ShortLogger("lightning.pytorch.loggers.CSVLogger", (), "", {"name": "logs"}),
    "tensorboard": ShortLogger("lightning.pytorch.loggers.TensorBoardLogger", ("tensorboard", "tensorboardX"), "tensorboard", {"name": "tensorboard"}),
    "wandb": ShortLogger("lightning.pytorch.loggers.WandbLogger", ("wandb",), "wandb"),
    "mlflow": ShortLogger("lightning.pytorch.loggers.MLFlowLogger", ("mlflow",), "mlflow", subdir="mlruns"),
}


class Extension(BaseModel):
    """A callback or logger: ``{class: import.path.ClassName, args: {...}}`` (a bare string: no args)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, serialize_by_alias=True)

    class_: str = Field(alias="class", min_length=1, description="Import path of the class (package.module.ClassName); for training.logger also csv, tensorboard, wandb or mlflow.")
    args: dict[str, JsonValue] = Field(default_factory=dict, description="Keyword arguments of its constructor: plain YAML data.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"class": value}
        if not isinstance(value, dict):
            raise PydanticCustomError("extension", "expected an import path, a logger name (csv, tensorboard, wandb, mlflow) "
                                      "or a mapping {class: PATH, args: {...}}; null for none")
        return value

    @field_validator("args", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        if not _is_plain(value):
            raise PydanticCustomError("plain_data", f"must hold {_PLAIN}")
        return value


def _is_plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, bool)) or (isinstance(value, float) and math.isfinite(value))


@dataclass
class Added:
    """What the config adds to the Trainer, and one line per item for the user."""

    callbacks: list = field(default_factory=list)
    loggers: list = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def build(tc, run_dir: Path) -> Added:
    """The callbacks and logger ``tc`` (a ``TrainingConfig``) names, created, or a
    :class:`UserError` naming the entry and the fix."""
    from lightning.pytorch.callbacks import Callback, ProgressBar
    from lightning.pytorch.loggers import Logger

    added = Added()
    for i, entry in enumerate(tc.callbacks):
        key = f"training.callbacks[{i}]"
        if entry.class_ in LOGGERS:
            raise UserError(f"{key}.class: {entry.class_!r} is a logger: set it as training.logger, not as a callback")
        cls = resolve_class(entry.class_, Callback, f"{key}.class", "lightning.pytorch.callbacks.Callback")
        if issubclass(cls, ProgressBar):
            raise UserError(f"{key}.class: {entry.class_} is a progress bar, and diffcore shows its own (Lightning takes one); "
                            "drop it from training.callbacks, or train with --no-progress to see none")
        added.callbacks.append(create(cls, entry.class_, dict(entry.args), key))
        added.lines.append(f"callback {describe(entry.class_, entry.args)} ({key})")
    if tc.logger is not None:
        path, args = tc.logger.class_, dict(tc.logger.args)
        short = LOGGERS.get(path)
        if short is not None:
            if short.packages and not any(_installed(p) for p in short.packages):
                raise UserError(f"training.logger.class: {path!r} needs the {short.pip} package, which is not installed: "
                                f'pip install "diffcore[{path}]" (or pip install {short.pip}; or choose another logger; '
                                "null: only the run's metrics.csv)")
            args = {"save_dir": str(Path(run_dir) / short.subdir) if short.subdir else str(run_dir), **short.defaults, **args}
            path = short.path
        cls = resolve_class(path, Logger, "training.logger.class", "lightning.pytorch.loggers.Logger", LOGGERS)
        added.loggers.append(create(cls, path, args, "training.logger"))
        added.lines.append(f"logger {describe(path, args)} (training.logger), besides the run's metrics.csv")
    return added


def resolve_class(path: str, base: type, key: str, base_name: str, short: dict | None = None) -> type:
    """The class ``path`` names: a subclass of ``base`` from an installed module, imported by
    its dotted name (never a file), or a :class:`UserError` naming ``key``."""
    names = f"; or one of {', '.join(short)}" if short else ""
    if not _PATH.fullmatch(path):
        raise UserError(f"{key}: {path!r} is not an import path; name a class of an installed module as "
                        f"package.module.ClassName (files are never loaded){names}")
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name) if _installed(module_name) else None
    except (Exception, SystemExit) as e:  # its (or a parent package's) import-time code failed
        raise UserError(f"{key}: importing {module_name} failed ({type(e).__name__}: {e}); fix or reinstall that package") from None
    if module is None:
        raise UserError(f"{key}: no installed module {module_name!r} (for {path}); install the package that provides it "
                        f"(pip install ...) or correct the path{names}")
    cls = getattr(module, name, None)
    if cls is None:
        raise UserError(f"{key}: module {module_name} has no {name!r}; check the class name")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UserError(f"{key}: {path} is not a subclass of {base_name}; only Lightning "
                        f"{'callbacks' if 'callbacks' in base_name else 'loggers'} can be named here")
    return cls


def create(cls: type, path: str, args: dict[str, Any], key: str) -> Any:
    """``cls(**args)``, its errors turned into one line naming ``key``."""
    try:
        return cls(**args)
    except TypeError as e:
        raise UserError(f"{key}.args: {path} does not take these arguments ({e}); see its documentation") from None
    except ModuleNotFoundError as e:
        raise UserError(f"{key}.class: {path} needs a package that is not installed ({e}); install it with pip") from None
    except Exception as e:  # e.g. Lightning's MisconfigurationException, a ValueError on a bad value
        raise UserError(f"{key}.args: {path}({_args(args)}) failed: {type(e).__name__}: {e}") from None


def describe(path: str, args: dict[str, Any]) -> str:
    return f"{path}({_args(args)})"


def _args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def _installed(module: str) -> bool:
    """Python finds ``module`` by its dotted name (its parent packages are imported to look)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing, or not a package
        return False
