"""Progress lines for logs, without Lightning: when a line is due, and the progress of the
sampling loops of ``diffcore sample``, ``evaluate`` and ``edit``.

:class:`Cadence` is the one rule, shared with training's :class:`~diffcore.platform.progress.
LineProgress`: a line at the first item, at the last, every ``every_fraction`` of the total
and every ``every_seconds`` (default 30 s; ``DIFFCORE_PROGRESS_SECONDS`` sets it), whichever
comes first. :class:`BatchProgress` prints on stderr, e.g.::

    sampling: batch 3/16  samples 192/1024  0.52 it/s  ETA 1m02s

(it/s: batches per second). A loop that ends within ``every_seconds`` prints nothing, so short
commands stay quiet. Redirected, each line is a line of the log; on a terminal one line is
redrawn in place, at most once a second.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TextIO

EVERY_ENV = "DIFFCORE_PROGRESS_SECONDS"
EVERY_SECONDS = 30.0


def default_every_seconds() -> float:
    """Seconds between progress lines: ``DIFFCORE_PROGRESS_SECONDS`` if it is a number >= 0, else 30."""
    try:
        value = float(os.environ.get(EVERY_ENV, ""))
    except ValueError:
        return EVERY_SECONDS
    return value if math.isfinite(value) and value >= 0 else EVERY_SECONDS


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


def speed(rate: float | None, seconds_left: float | None) -> list[str]:
    """``["2.31 it/s", "ETA 3m28s"]``; ``["ETA ?"]`` before the rate is known."""
    if rate is None or rate <= 0 or seconds_left is None:
        return ["ETA ?"]
    return [f"{rate:.3g} it/s", f"ETA {format_duration(seconds_left)}"]


class Cadence:
    """When a progress line is due: the first item, the last, every ``every_fraction`` of the
    total (``None``: no such rule), and ``every_seconds`` after the line before, whichever comes
    first."""

    def __init__(self, every_fraction: float | None = 0.1, every_seconds: float | None = None, clock=time.monotonic) -> None:
        self.every_fraction = every_fraction
        self.every_seconds = default_every_seconds() if every_seconds is None else every_seconds
        self.clock = clock
        self.start()

    def start(self, done: int = 0) -> None:
        """Start counting at ``done`` items (a resumed run: the rate counts this process's items)."""
        self.t0 = self.last = self.clock()
        self.done0 = done
        self.printed = False

    def due(self, done: int, total: int) -> bool:
        """Whether a line is due after ``done`` of ``total`` items (remembered when it is)."""
        now = self.clock()
        step = (max(1, math.ceil(total * self.every_fraction)) if total > 0 else 1) if self.every_fraction else 0
        yes = (not self.printed or (total > 0 and done >= total) or (step and done % step == 0)
               or now - self.last >= self.every_seconds)
        if yes:
            self.last, self.printed = now, True
        return yes

    def elapsed(self) -> float:
        return self.clock() - self.t0


class BatchProgress:
    """Progress of a loop over sampling batches, on stderr (see the module docstring): call
    :meth:`done` after each batch. ``what`` names the loop (``sampling``); ``batches`` is the
    list of batches (their ``shape`` gives the counts) or a number of batches; ``samples`` is
    the total sample count when ``batches`` is a number."""

    def __init__(self, what: str, batches: Sequence[Any] | int, samples: int | None = None, *,
                 stream: TextIO | None = None, clock=time.monotonic) -> None:
        self.what = what
        if isinstance(batches, int):
            self.total_batches, self.total = batches, int(samples or 0)
        else:
            self.total_batches, self.total = len(batches), sum(_count(b) for b in batches)
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        # On a terminal, one line redrawn at most once a second; in a log, a line per Cadence.
        self.cadence = Cadence(every_fraction=None if self.tty else 0.1, every_seconds=1.0 if self.tty else None, clock=clock)
        self.quiet = self.cadence.every_seconds  # nothing before this many seconds have passed
        self.batches = self.samples = 0
        self._shown = False
        self._width = 0

    def done(self, batch_or_count: Any) -> None:
        """One batch done (a sampling batch, or its sample count)."""
        self.batches += 1
        self.samples += batch_or_count if isinstance(batch_or_count, int) else _count(batch_or_count)
        last = 0 < self.total_batches <= self.batches or 0 < self.total <= self.samples
        if not (self.cadence.due(self.batches, self.total_batches) or last):
            return
        if self._shown or self.cadence.elapsed() >= self.quiet:
            self._emit(self.line())
            if last:
                self.close()

    def line(self) -> str:
        """``sampling: batch 3/16  samples 192/1024  0.52 it/s  ETA 1m02s`` (a total is left
        out when the loop has gone past it: a domain's own batching)."""
        b = f"batch {self.batches}/{self.total_batches}" if 0 < self.batches <= self.total_batches else f"batch {self.batches}"
        s = f"samples {self.samples}/{self.total}" if 0 < self.samples <= self.total else f"samples {self.samples}"
        elapsed = self.cadence.elapsed()
        rate = self.batches / elapsed if elapsed > 0 else None
        # the ETA from the samples' pace (batches may differ in size); unknown past the total
        left = (self.total - self.samples) * elapsed / self.samples if 0 < self.samples <= self.total else None
        return f"{self.what}: " + "  ".join([b, s, *speed(rate, left)])

    def _emit(self, line: str) -> None:
        self._shown = True
        if self.tty:
            self.stream.write("\r" + line + " " * max(0, self._width - len(line)))
            self._width = len(line)
            self.stream.flush()
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """End a redrawn terminal line (nothing in a log)."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def track(batches: Iterable[Any], what: str, enabled: bool = True) -> Iterator[Any]:
    """Iterate over ``batches`` (sampling batches), reporting after each one (:class:`BatchProgress`);
    just iterate when not ``enabled``."""
    if not enabled:
        yield from batches
        return
    batches = batches if isinstance(batches, Sequence) else list(batches)
    report = BatchProgress(what, batches)
    try:
        for batch in batches:
            yield batch
            report.done(batch)
    finally:
        report.close()


def counting(fn: Callable[[Any], Any], what: str, samples: int, batch_size: int) -> Callable[[Any], Any]:
    """``fn`` (a sampling batch -> samples, what ``Domain.evaluate`` calls) reporting each call:
    for a loop that the domain runs, of about ``samples / batch_size`` batches."""
    report = BatchProgress(what, max(1, math.ceil(samples / max(1, batch_size))), samples)

    def counted(batch):
        out = fn(batch)
        report.done(batch)
        return out

    return counted


def _count(batch: Any) -> int:
    shape = batch.get("shape") if isinstance(batch, dict) else None
    return int(shape[0]) if shape else 0
