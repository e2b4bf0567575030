"""What the commands of the ``diffcore`` CLI share: one-line errors, the plugins loaded (and
a warning about broken ones) before each command, sampler and domain options, seeds, output
folders."""

from __future__ import annotations

import functools
import os
import shlex
import time
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from typer.core import TyperCommand

from diffcore.contract.errors import UserError

EXIT_USER_ERROR = 2

_LATER: dict = {}  # placeholder help text -> the function that writes it


def later(text) -> str:
    """An option's help written by ``text()`` only when its command's help is shown (a command
    made with ``cls=LazyHelp``): the sampler table and the config's field descriptions import
    torch, which ``diffcore --help``, ``--version`` and a command that needs neither never load."""
    key = f"(help {len(_LATER)})"
    _LATER[key] = text
    return key


class LazyHelp(TyperCommand):
    """A command whose options' help may be :func:`later` texts."""

    def format_help(self, ctx, formatter) -> None:
        for param in self.params:
            if getattr(param, "help", None) in _LATER:
                param.help = _LATER[param.help]()
        super().format_help(ctx, formatter)


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USER_ERROR)


def friendly(fn):
    """Turn a :class:`UserError` (or a pydantic ValidationError that escaped a plugin) into
    ``error: ...`` on stderr and exit code 2; load the plugins first (:func:`load_plugins`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            load_plugins(fn.__name__)
            return fn(*args, **kwargs)
        except UserError as e:
            fail(str(e))
        except ValidationError as e:  # a plugin validated something itself
            fail("; ".join(f"{'.'.join(map(str, err['loc'])) or e.title}: {err['msg']}" for err in e.errors()))

    return wrapper


def load_plugins(command: str) -> None:
    """Load the plugins before a command does anything: under --strict-plugins a broken plugin
    is then the command's one error as it is (not wrapped in another, e.g. a run's config
    path); otherwise one line warns about the broken ones (not in `diffcore plugins`, which
    lists them, nor in the processes DDP re-launches)."""
    from diffcore.platform.registry import broken_warning, get_registry

    text = broken_warning(get_registry().failed())
    if text and command != "plugins":
        from diffcore.platform.runs import launcher_rank

        if launcher_rank() == 0:
            typer.echo(text, err=True)


def seed_value(value) -> int:
    """``--seed``'s parser: an integer from 0 to 2**32 - 1, what numpy and Lightning accept."""
    from diffcore.platform.validation import SEED_MAX

    try:
        seed = value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        fail(f"--seed {value!r}: expected an integer from 0 to {SEED_MAX} (2**32 - 1)")
    if not 0 <= seed <= SEED_MAX:
        fail(f"--seed {seed}: out of range; use an integer from 0 to {SEED_MAX} (2**32 - 1)")
    return seed


def count_value(value) -> int:
    """``--num``'s parser: a positive integer, at most :data:`~diffcore.platform.budget.MAX_SAMPLES`
    (whether the samples fit in memory is checked once the run's sample size is known)."""
    from diffcore.platform.budget import check_count

    try:
        num = value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        fail(f"--num {value!r}: expected a positive integer, e.g. --num 64")
    try:
        return check_count(num)
    except UserError as e:
        fail(str(e))


# what --out gets when a file was meant: the files diffcore writes or reads (refused unless such a folder exists)
FILE_SUFFIXES = frozenset(".sdf .mol .mol2 .xyz .pdb .smi .png .jpg .jpeg .gif .wav .flac .mp3 .ogg .npy .npz .pt .pth "
                          ".ckpt .safetensors .json .yaml .yml .csv .txt".split())


def out_path(value) -> Path:
    """``--out``'s parser: an empty value is refused (it would mean the current folder), and so is
    a new path named like a file (``--out confs.sdf``: the command writes a folder)."""
    if not str(value).strip():
        fail("--out is empty; give a folder, e.g. --out runs/my-run (or omit --out for the default folder)")
    path = Path(value)
    if path.suffix.lower() in FILE_SUFFIXES and not path.is_dir() and not str(value).endswith(("/", os.sep)):
        fail(f"--out {value}: --out is a folder (the command writes its files and their record in it), and "
             f"{path.name!r} looks like a file name; give a folder, e.g. --out {shlex.quote(str(path.with_suffix('')))}")
    return path


def _times(text: str | None) -> list[float] | None:
    """``--times 0.999,0.8,0.1`` as floats (checked against the schedule by the plan)."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        fail(f"--times {text!r}: expected comma-separated numbers, e.g. --times 0.999,0.8,0.5,0.2,0.02")


def _notes(plan) -> None:
    for note in plan.notes:
        typer.echo(f"note: {note}", err=True)


def _sampler_options(items: list[str], eta: float | None, flag: str = "--option") -> dict[str, Any]:
    """``--option KEY=VALUE`` items (values parsed as YAML, like --set) and the ``--eta``
    shorthand, as the options of a sampling plan (``flag``: the option's name in messages,
    e.g. ``--guidance-option``)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or "." in key:
            fail(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} eta=0.5")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            fail(f"{flag} {item!r}: the value is not valid YAML")
    if eta is not None:
        out["eta"] = eta
    return out


def parse_extra_options(args: list[str], model: type[BaseModel] | None, domain_name: str) -> BaseModel | None:
    """``--key value`` pairs left over by typer, validated by the domain's SampleOptions.
    Dashes become underscores; a repeated key (or a list field) gives a list; a key without
    a value is ``true``."""
    raw: dict[str, Any] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        if not tok.startswith("--") or tok == "--":
            fail(f"unexpected argument {tok!r}; see `diffcore sample --help`")
        key, eq, value = tok[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            else:
                value = "true"
        raw.setdefault(key.replace("-", "_"), []).append(value)
        i += 1
    fields = model.model_fields if model is not None else {}
    allowed = ", ".join("--" + n.replace("_", "-") for n in fields) or "none"
    unknown = [k for k in raw if k not in fields]
    if unknown:
        fail(f"unknown option --{unknown[0].replace('_', '-')} for the {domain_name!r} domain; its options: {allowed} (and those of `diffcore sample --help`)")
    if model is None:
        return None
    values = {k: v if (_is_sequence(fields[k].annotation) or len(v) > 1) else v[0] for k, v in raw.items()}
    try:
        parsed = model.model_validate(values)
    except ValidationError as e:
        lines = [f"--{'.'.join(str(p) for p in err['loc'][:1]).replace('_', '-')}: {err['msg'].removeprefix('Value error, ')}"
                 for err in e.errors()]
        fail("; ".join(dict.fromkeys(lines)))
    from diffcore.platform.validation import require_finite

    for key, value in parsed.model_dump().items():  # --scale inf: refused like the config's numbers
        require_finite(value, "--" + key.replace("_", "-"))
    return parsed


def _is_sequence(annotation) -> bool:
    """list[...] / tuple[...] / set[...], also inside ``X | None``."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence(a) for a in typing.get_args(annotation))
    return origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set)


def _describe_options(model: type[BaseModel] | None) -> str:
    if model is None:
        return "(this domain has no extra sample options)"
    lines = []
    for name, f in model.model_fields.items():
        default = "" if f.is_required() else f" [default: {f.get_default(call_default_factory=True)!r}]"
        lines.append(f"  --{name.replace('_', '-'):<20} {f.description or ''}{default}")
    return "\n".join(lines)


# the options sample and evaluate share
_SPACING = typer.Option(None, "--spacing", help="Where the steps go: linspace, trailing, leading, leading-multistep, logsnr, karras, shifted [default: sampling.spacing, else the sampler's own].")
_TIMES = typer.Option(None, "--times", help="The model times themselves, comma-separated and decreasing, e.g. 0.999,0.8,0.5,0.2,0.02 (instead of --steps/--spacing).")
_GUIDANCE_VARIANT = typer.Option(None, "--guidance-variant", help="How --guidance is applied: cfg, interval, rescaled, apg, cfg++ (docs/samplers.md, Guidance) [default: sampling.guidance_variant].")
_GUIDANCE_OPTION = typer.Option([], "--guidance-option", help="An option of the guidance variant, KEY=VALUE (repeatable), e.g. --guidance-option lo=0.3 for interval, eta=0 for apg [default: sampling.guidance_options].")
# sampling over several processes (diffcore.platform.generation): the same files whatever their number
_ACCELERATOR = typer.Option("auto", "--accelerator", help="Where the processes run: cpu, gpu, auto (Lightning's names).")
_DEVICES = typer.Option(1, "--devices", min=1, help="Processes per node sharing the samples (GPUs, or CPU processes); the files are the same whatever the number.")
_NUM_NODES = typer.Option(1, "--num-nodes", min=1, help="Nodes sharing the samples (set MASTER_ADDR, MASTER_PORT and NODE_RANK on each, or use torchrun/srun: docs/scaling.md).")
_SET_SAMPLING = typer.Option([], "--set", "-s", metavar="data.KEY=VALUE", help="Change one of the run's sampling settings for this command only, e.g. --set data.sampling_pool=5 (value parsed as YAML; repeatable; `--domain-help` lists them); RUN/config.yaml is left as it is.")


def describe_settings(domain) -> str:
    """The domain's own sampling settings of a run (:meth:`diffcore.Domain.sampling_settings`),
    one line each with its value and its description, or "" when it has none."""
    settings = domain.sampling_settings()
    if not settings:
        return ""
    fields = type(domain.options).model_fields
    lines = ["sampling settings of this run (data: section of RUN/config.yaml; --set data.KEY=VALUE changes one for a command):"]
    for name, value in settings.items():
        about = fields[name].description if name in fields else None
        lines.append(f"  {name} = {value!r}" + (f"  {about}" if about else ""))
    return "\n".join(lines)


def _fresh_dir(base: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = base / stamp, 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{n}"
    return path


def output_dir(out: Path | None, base: Path) -> Path:
    """``--out``: a new or empty folder (nothing is overwritten), by default a fresh
    ``base/<date>-<time>``."""
    if out is None:
        return _fresh_dir(base)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(f"--out {out} exists and is not an empty folder; choose a new one (nothing is overwritten)")
    return out
