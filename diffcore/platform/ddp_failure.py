"""A multi-process (DDP) run whose process dies ends with one line, not gloo's traceback.

When one process of a DDP run dies (killed, out of memory, a crash), the others fail at their
next collective: gloo raises a ``RuntimeError`` ("Connection reset by peer", "Connection closed
by peer", a timeout) from deep inside ``backward``. And Lightning's observer of the processes
it launched SIGKILLs the launching process, without a word, within 5 s of seeing one of them
exit. Here both end the same way, on stderr and with exit code 1::

    error: a training process (rank 1) died: killed by SIGKILL; the last checkpoint is
    RUN/checkpoints/last.ckpt; resume with `diffcore train --resume --out RUN`

- :func:`reason` recognises a collective's failure in a surviving process, and :func:`message`
  says which rank died (from the exit status of the processes rank 0 launched, else: the other
  one of two), why, and how to resume; the CLI prints it.
- :func:`watch` (rank 0, before training) keeps the processes Lightning launches and replaces
  its observer's silent kill: the observer waits for the main thread to report, and reports
  itself if the main thread stays blocked in a collective.

With more than two processes, a survivor other than rank 0 exits without a line (rank 0, or
the process that launched it, reports). Lightning's observer is private API: where a version
of Lightning lacks it, :func:`watch` does nothing and the main thread's report still holds.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

EXIT = 1
GRACE = 10.0  # seconds the observer leaves the main thread to report before reporting itself
# What gloo, NCCL and the TCP store say when a peer is gone: the words to show, then the names
_PEER = re.compile(r"connection (reset|closed) by peer|broken pipe|connection refused|timed out", re.IGNORECASE)
_BACKEND = re.compile(r"gloo|nccl|socket|timeout", re.IGNORECASE)
_children: list = []  # the processes Lightning launched (their Popen objects), from its observer
_reported = threading.Event()
_lock = threading.Lock()
_run: dict = {}  # the run rank 0 trains (for the observer's report)


def reason(exc: BaseException, world: int) -> str | None:
    """A short reason if ``exc`` is a collective's failure in a run of ``world`` processes
    (a peer is gone), else None."""
    if world <= 1 or not isinstance(exc, RuntimeError):
        return None
    text = str(exc)
    dist_error = getattr(sys.modules.get("torch.distributed"), "DistError", ())
    found = _PEER.search(text)
    if found is not None:
        return found.group(0)[0].upper() + found.group(0)[1:]
    if not (_BACKEND.search(text) or (dist_error and isinstance(exc, dist_error)) or _dead()):
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return re.sub(r"^\[[^\]]*\]\s*", "", first)[:160]  # without gloo's "[/path/pair.cc:545]"


def _dead(wait: float = 0.0) -> dict[int, int]:
    """``{rank: exit status}`` of the launched processes that have exited with an error."""
    end = time.monotonic() + wait
    while True:
        found = {i + 1: p.returncode for i, p in enumerate(_children) if p.poll()}
        if found or time.monotonic() >= end:
            return found
        time.sleep(0.05)


def _status(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def message(run_dir: Path, rank: int, world: int, why: str | None) -> str | None:
    """The one line (without ``error: ``) for this process, rank ``rank`` of ``world``; None
    when another process reports (more than two processes, and this is not rank 0)."""
    from .runfiles import _candidates, _start_over

    dead = _dead(wait=1.0) if rank == 0 else {}
    if not dead and rank != 0 and world != 2:
        return None
    what = _run.get("what", "training")
    if dead:  # rank 0 knows the exit status of the processes it launched
        who = f"a {what} process (rank {', '.join(map(str, sorted(dead)))})"
        why = "; ".join(_status(dead[r]) for r in sorted(dead))
    else:
        who = f"a {what} process (rank {1 - rank})" if world == 2 else f"another {what} process"
    if _run.get("then"):  # not a training run: no checkpoint to resume from
        return f"{who} died: {why or 'unknown reason'}; {_run['then']}"
    run_dir = Path(run_dir)
    ckpt = next((p for p in _candidates(run_dir) if p.is_file()), None)
    then = (f"the last checkpoint is {ckpt}; resume with `diffcore train --resume --out {run_dir}`" if ckpt else
            f"no checkpoint was written yet; {_start_over(run_dir)}")
    return f"{who} died: {why or 'unknown reason'}; {then}"


def report(run_dir: Path, rank: int, world: int, why: str | None) -> None:
    """Print the line once per process (the main thread or the observer, whichever comes
    first) and stop the processes Lightning launched."""
    with _lock:
        if _reported.is_set():
            return
        _reported.set()
        line = message(run_dir, rank, world, why)
        if line:
            print(f"error: {line}", file=sys.stderr, flush=True)
        for p in _children:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)  # blocked in a collective, SIGTERM would not end it


def watch(run_dir: Path | None, world: int, what: str = "training", then: str | None = None) -> None:
    """Before rank 0 trains (or samples: ``what``, and ``then``, what the user can do, instead of
    resuming a run): keep the processes Lightning's launcher starts, and make its observer
    report a process's death (:func:`report`) instead of killing this one silently."""
    _run.update(dir=run_dir, world=world, what=what, then=then)
    try:
        from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver as Observer
    except ImportError:
        return
    if getattr(Observer, "_diffcore_watched", False) or not hasattr(Observer, "_terminate_all"):
        return
    logging.getLogger(Observer.__module__).setLevel(logging.WARNING)  # its "Child process ... terminated": our line says it
    init = Observer.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        _children[:] = list(getattr(self, "_child_processes", []))

    def _terminate_all(self):
        # A launched process died. The main thread reports when its next collective fails; if
        # it stays blocked, report here and end this process with the same line and status.
        if not _reported.wait(GRACE):
            report(_run["dir"], 0, _run["world"], None)
            os._exit(EXIT)

    Observer.__init__, Observer._terminate_all, Observer._diffcore_watched = __init__, _terminate_all, True
