"""Progress for logs: one plain line every few steps or seconds when stdout is not a terminal.

Lightning's bar redraws one line with carriage returns; redirected to a file it shows nothing
useful until the run ends. :class:`LineProgress` is a Lightning progress bar (so Lightning adds
no bar of its own) that prints instead, e.g.::

    step 120/600  loss 0.0412  2.31 it/s  ETA 3m28s

a line every ``every_fraction`` of ``max_steps`` or ``every_seconds``, whichever comes first;
the first and the last step always.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar


def format_duration(seconds: float) -> str:
    """``3m28s``, ``1h02m``, ``45s``; ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def progress_line(step: int, max_steps: int, loss: float | None, rate: float | None) -> str:
    """``step 120/600  loss 0.0412  2.31 it/s  ETA 3m28s``."""
    parts = [f"step {step}/{max_steps}"]
    if loss is not None:
        parts.append(f"loss {loss:.4g}" if math.isfinite(loss) else f"loss {loss}")
    if rate is not None and rate > 0:
        parts.append(f"{rate:.3g} it/s")
        parts.append(f"ETA {format_duration(max(0, max_steps - step) / rate)}")
    else:
        parts.append("ETA ?")
    return "  ".join(parts)


class LineProgress(ProgressBar):
    """Plain progress lines for a redirected stdout (see the module docstring)."""

    def __init__(self, every_fraction: float = 0.1, every_seconds: float = 30.0, stream: TextIO | None = None,
                 clock=time.monotonic) -> None:
        super().__init__()
        self.every_fraction = every_fraction
        self.every_seconds = every_seconds
        self._stream = stream
        self._clock = clock
        self._enabled = True
        self._t0: float | None = None
        self._step0 = 0
        self._last_time = 0.0
        self._last_step = -1

    # ProgressBar's interface
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout

    def _every_steps(self, max_steps: int) -> int:
        return max(1, math.ceil(max_steps * self.every_fraction)) if max_steps > 0 else 1

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0 = self._last_time = self._clock()
        self._step0 = trainer.global_step  # a resumed run: the rate counts this process's steps only
        self._last_step = -1

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        step, max_steps = trainer.global_step, trainer.max_steps
        if step == self._last_step:  # gradient accumulation: the step did not advance
            return
        now = self._clock()
        first = self._last_step < 0
        last = max_steps > 0 and step >= max_steps
        due = step % self._every_steps(max_steps) == 0 or now - self._last_time >= self.every_seconds
        if first or last or due:
            self._print(trainer, step, max_steps, now, outputs)
            self._last_time = now
        self._last_step = step

    def _print(self, trainer, step: int, max_steps: int, now: float, outputs: Any) -> None:
        done = step - self._step0
        elapsed = now - (self._t0 if self._t0 is not None else now)
        rate = done / elapsed if done > 0 and elapsed > 0 else None
        line = progress_line(step, max_steps, _loss(trainer, outputs), rate)
        print(line, file=self.stream, flush=True)


def _loss(trainer, outputs: Any) -> float | None:
    value = outputs.get("loss") if isinstance(outputs, dict) else outputs
    if value is None:
        value = trainer.callback_metrics.get("loss")
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return None
