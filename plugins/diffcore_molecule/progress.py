"""Progress lines on stderr for work that takes minutes, such as building the reference
conformers of a data set (ETKDG + MMFF for a thousand molecules): one line when it starts,
one every ``every`` seconds with the count, the time so far and an estimate of the rest, and
one when it is done. Plain lines, so they read the same in a terminal and in a log file."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

PREFIX = "diffcore-molecule: "


def duration(seconds: float) -> str:
    """``35 s``, ``2 min``, ``1 h 05 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def say(text: str) -> None:
    """One line for the user on stderr (stdout stays the command's own)."""
    print(PREFIX + text, file=sys.stderr, flush=True)


def reported(items: Sequence[T], what: str, unit: str, *, every: float = 10.0,
             clock: Callable[[], float] = time.monotonic) -> Iterator[T]:
    """Yield ``items``, saying ``what: 40/212 molecules, 35 s, ETA 2 min`` at the start, every
    ``every`` seconds, and ``what: 212/212 molecules in 4 min`` when all are done."""
    total = len(items)
    start = last = clock()
    say(f"{what}: 0/{total} {unit}")
    for i, item in enumerate(items):
        yield item
        now = clock()
        done = i + 1
        if now - last >= every and done < total:
            elapsed = now - start
            say(f"{what}: {done}/{total} {unit}, {duration(elapsed)}, ETA {duration(elapsed / done * (total - done))}")
            last = now
    say(f"{what}: {total}/{total} {unit} in {duration(clock() - start)}")
