"""SIGINT and SIGTERM during ``diffcore train``: finish the step, write a checkpoint, say how to
resume, and exit 130 / 143.

:func:`catching` installs a handler that only records the signal; the training loop checks it
after every step (``training.StopOnSignal`` sets Lightning's ``trainer.should_stop``, agreed
over every DDP rank), so the checkpoint is written between two steps, never from the middle
of one. Lightning 2.x handles SIGTERM itself by raising ``SIGTERMException`` (a ``SystemExit``
with code 0) and forwarding the signal to its DDP processes from inside the handler, without a
checkpoint; ``StopOnSignal`` puts this handler back once Lightning has installed its own.
A second Ctrl-C stops at once (``KeyboardInterrupt``), without a new checkpoint.

Standard library only, so the CLI can install it before Lightning is imported.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

SIGINT, SIGTERM = signal.SIGINT, signal.SIGTERM
SIGNALS = (SIGINT, SIGTERM)
_state: dict = {"signum": None, "depth": 0, "old": {}}


def received() -> int | None:
    """The first SIGINT/SIGTERM received inside :func:`catching`, else ``None``."""
    return _state["signum"]


def _handle(signum, frame) -> None:
    if _state["signum"] is None:
        _state["signum"] = signum
        if signum == signal.SIGINT and sys.stderr is not None and sys.stderr.isatty():
            # os.write: a signal handler must not re-enter the buffered stream a progress bar may be writing
            os.write(2, b"\nstopping after this step with a checkpoint (Ctrl-C again: stop at once, without one)\n")
    elif signum == signal.SIGINT:
        raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def catching():
    """Record SIGINT/SIGTERM instead of dying (nested uses share the outermost one)."""
    outer = _state["depth"] == 0 and _main_thread()
    if outer:
        _state["signum"] = None
        _state["old"] = {s: signal.getsignal(s) for s in SIGNALS}
        for s in SIGNALS:
            signal.signal(s, _handle)
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if outer:
            for s, old in _state["old"].items():
                signal.signal(s, old if old is not None else signal.SIG_DFL)
            _state["old"] = {}


def reinstall() -> None:
    """Take SIGINT/SIGTERM back from whoever replaced the handler inside :func:`catching`."""
    if _state["depth"] > 0 and _main_thread():
        for s in SIGNALS:
            if signal.getsignal(s) is not _handle:
                signal.signal(s, _handle)


class Interrupted(Exception):
    """Training stopped on a signal. ``step``: the step of the checkpoint written on the way
    out (``None``: none was written); ``complete``: every step had been trained."""

    def __init__(self, signum: int, step: int | None = None, *, complete: bool = False, run_dir: Path | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.step, self.complete, self.run_dir = signum, step, complete, run_dir

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process killed by the signal: 130, 143

    def message(self) -> str:
        """One line: what was saved and the command that continues the run."""
        name = signal.Signals(self.signum).name
        if self.run_dir is None:
            return f"interrupted by {name} before training started; nothing was written: run the same command again"
        resume = f"diffcore train --out {shlex.quote(str(self.run_dir))} --resume"
        ckpts = Path(self.run_dir) / "checkpoints"
        if self.complete:
            return f"interrupted by {name} after the last step ({self.step}): the run is complete (final previews skipped)"
        if self.step is not None:
            return f"interrupted by {name} at step {self.step}: checkpoint written to {ckpts / 'last.ckpt'}; continue with: {resume}"
        if ckpts.is_dir() and any(p.suffix == ".ckpt" for p in ckpts.iterdir()):
            return f"interrupted by {name} before a new checkpoint was written; continue from the last one with: {resume}"
        return f"interrupted by {name} before training started; nothing to resume: run the same command again"


def check() -> None:
    """Raise :class:`Interrupted` if a signal has arrived (for the stretches before training)."""
    if _state["signum"] is not None:
        raise Interrupted(_state["signum"])
