"""Progress for logs: one plain line every few steps or seconds when stdout is not a terminal.

Lightning's bar redraws one line with carriage returns; redirected to a file it shows nothing
useful until the run ends. :class:`LineProgress` is a Lightning progress bar (so Lightning adds
no bar of its own) that prints instead, e.g.::

    step 120/600  loss 0.0412  2.31 it/s  ETA 3m28s

a line every ``every_fraction`` of ``max_steps`` or ``every_seconds`` (default 30 s;
``DIFFCORE_PROGRESS_SECONDS``), whichever comes first; the first and the last step always: the
rule of :class:`~diffcore.platform.progress_lines.Cadence`, which sampling and evaluation share.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

from .progress_lines import Cadence, format_duration, speed  # noqa: F401  (format_duration: this module's name too)


def progress_line(step: int, max_steps: int, loss: float | None, rate: float | None) -> str:
    """``step 120/600  loss 0.0412  2.31 it/s  ETA 3m28s``."""
    parts = [f"step {step}/{max_steps}"]
    if loss is not None:
        parts.append(f"loss {loss:.4g}" if math.isfinite(loss) else f"loss {loss}")
    parts += speed(rate, max(0, max_steps - step) / rate if rate else None)
    return "  ".join(parts)


class LineProgress(ProgressBar):
    """Plain progress lines for a redirected stdout (see the module docstring)."""

    def __init__(self, every_fraction: float = 0.1, every_seconds: float | None = None, stream: TextIO | None = None,
                 clock=time.monotonic) -> None:
        super().__init__()
        self.cadence = Cadence(every_fraction, every_seconds, clock)
        self._stream = stream
        self._enabled = True
        self._last_step = -1

    # ProgressBar's interface
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout

    def on_train_start(self, trainer, pl_module) -> None:
        self.cadence.start(trainer.global_step)  # a resumed run: the rate counts this process's steps only
        self._last_step = -1

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        step, max_steps = trainer.global_step, trainer.max_steps
        if step == self._last_step:  # gradient accumulation: the step did not advance
            return
        if self.cadence.due(step, max_steps):
            self._print(trainer, step, max_steps, outputs)
        self._last_step = step

    def _print(self, trainer, step: int, max_steps: int, outputs: Any) -> None:
        done, elapsed = step - self.cadence.done0, self.cadence.elapsed()
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


def progress_bar() -> ProgressBar:
    """Lightning's progress bar, counting steps (runs are sized in steps, not epochs); plain lines if stdout is no tty."""
    if not sys.stdout.isatty():
        return LineProgress()
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
    from lightning.pytorch.callbacks.progress.rich_progress import _RICH_AVAILABLE

    class StepProgressBar(RichProgressBar if _RICH_AVAILABLE else TQDMProgressBar):
        def get_metrics(self, trainer, pl_module):
            items = super().get_metrics(trainer, pl_module)
            items.pop("v_num", None)
            items["step"] = f"{trainer.global_step}/{trainer.max_steps}"
            return items

        def _get_train_description(self, current_epoch: int) -> str:
            return f"Epoch {current_epoch}"  # not "Epoch 3/-2" (max_epochs=-1: we stop on steps)

    return StepProgressBar()
