"""Checks of a run's settings that its pydantic models cannot make alone.

- **Finite numbers.** No infinity or NaN anywhere: the core's sections refuse them themselves
  (``allow_inf_nan=False``); :func:`require_finite` looks inside the free-form mappings
  (``diffusion.schedule_options``, ``sampling.options``), the plugins' option models (``data``,
  ``backbone``, a domain's sample options) and the command line's numbers (``--guidance``,
  ``--eta``, ``--option``, ``--times``).
- **Seeds.** ``0 <= seed < 2**32`` (:data:`SEED_MAX`): what numpy and Lightning's
  ``seed_everything`` accept, for ``training.seed`` and every ``--seed``.
- **The machine.** :func:`check_hardware` refuses, before training starts, an accelerator this
  machine does not have and a precision its device cannot run (Lightning would end with a
  traceback, or train a ``16-mixed`` run on a CPU silently in bfloat16), naming the fix.
"""

from __future__ import annotations

import math
from typing import Any

from diffcore.contract.errors import UserError

SEED_MAX = 2**32 - 1  # numpy's and Lightning's bound (lightning.fabric.utilities.seed.max_seed_value)
FLOAT16 = ("16-mixed", "16-true")  # float16: CUDA only (Lightning turns 16-mixed into bf16-mixed on a CPU)


def non_finite(value: Any, path: tuple[str, ...] = ()) -> tuple[str, float] | None:
    """The first infinite or NaN number inside ``value`` (through mappings and lists), as
    (dotted key below ``value``, the number); None if there is none."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".".join(path), value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for k, v in items:
        found = non_finite(v, (*path, str(k)))
        if found is not None:
            return found
    return None


def require_finite(value: Any, key: str) -> None:
    """Refuse an infinite or NaN number inside ``value``, naming ``key`` (and the key inside)."""
    found = non_finite(value)
    if found is None:
        return
    sub, bad = found
    if key.startswith("--"):  # a command-line option: --option eta=inf, --times 0.9,nan
        what = f"{bad!r} for {'item ' if sub.isdigit() else ''}{sub}" if sub else repr(bad)
        raise UserError(f"{key}: Input should be a finite number (got {what}); infinity and NaN are refused")
    raise UserError(f"{'.'.join(k for k in (key, sub) if k)}: Input should be a finite number (got {bad!r}); infinity and NaN are refused")


def check_hardware(cfg) -> None:
    """Refuse a ``training.accelerator`` / ``precision`` / ``devices`` this machine cannot run,
    before any work starts (``cfg``: a :class:`~diffcore.platform.config.RunConfig`)."""
    import torch

    t = cfg.training
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if t.accelerator in ("gpu", "cuda") and not cuda:
        raise UserError(f"training.accelerator: {t.accelerator!r} needs a CUDA GPU, and torch finds none on this machine "
                        "(torch.cuda.is_available() is False); use --accelerator cpu (or auto)")
    if t.accelerator == "mps" and not mps:
        raise UserError("training.accelerator: 'mps' needs Apple's Metal, which torch does not find on this machine "
                        "(torch.backends.mps.is_available() is False); use --accelerator cpu (or auto)")
    auto = t.accelerator == "auto"
    device = "cuda" if t.accelerator in ("gpu", "cuda") or (auto and cuda) else "mps" if t.accelerator == "mps" or (auto and mps) else "cpu"
    if device == "cpu" and t.precision in FLOAT16:
        raise UserError(f"training.precision: {t.precision} (float16) needs a CUDA GPU, and this run would train on the CPU "
                        f"(training.accelerator: {t.accelerator}); use --precision 32-true, or bf16-mixed (bfloat16, which CPUs run)")
    if device == "mps" and t.precision in ("64-true", "64"):
        raise UserError(f"training.precision: {t.precision}: Apple's MPS has no float64; use --precision 32-true")
    if device == "cuda" and t.precision.startswith("bf16") and not torch.cuda.is_bf16_supported():
        raise UserError(f"training.precision: {t.precision}: this GPU has no bfloat16; use --precision 16-mixed or 32-true")
    if device == "cuda" and t.devices > torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise UserError(f"training.devices: {t.devices} GPUs asked, and this machine has {n}; use --devices {n}, "
                        "or --accelerator cpu for processes on the CPU")
