"""A run directory as a transaction: one writer at a time, files replaced whole, and a
resume that picks a checkpoint it can read before anything is written.

- :class:`RunLock`: ``RUN/.lock`` held (``flock``) by the process that trains into the run;
  a second one is refused with the holder's pid. The kernel drops the lock when its process
  dies, so the lock of a killed process is taken over (with a note); where the file system
  has no ``flock`` the pid in the file decides.
- :func:`atomic_write`: write to a temporary file beside the target, then rename it over the
  target, so a run never holds half a config, state or weights file; the temporary file is
  removed on failure, and leftovers of a killed process are swept when the run is locked.
- :func:`resume_point`: ``checkpoints/last.ckpt``, else the newest readable
  ``checkpoints/step=N.ckpt`` (with a note), read safely; a clear refusal when there is none.

Standard library only at import (torch and the run loader are imported where used).
"""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..contract.errors import UserError

LOCK = ".lock"
_TMP = re.compile(r"^\..+\.tmp-\d+$")
_STEP = re.compile(r"^step=(\d+)\.ckpt$")


# ----------------------------------------------------------------- atomic files
def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` then rename ``tmp`` over ``path`` (same folder, so the rename is atomic);
    ``tmp`` is removed if anything fails, a signal's KeyboardInterrupt included."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Remove temporary files a killed writer left in the run (call with the lock held)."""
    gone = []
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_dir():
            for p in folder.iterdir():
                if _TMP.match(p.name) and p.is_file():
                    p.unlink(missing_ok=True)
                    gone.append(p)
    return gone


# ------------------------------------------------------------------------ lock
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _holder(text: str) -> tuple[int | None, str]:
    parts = text.split()
    pid = int(parts[0]) if parts and parts[0].isdigit() else None
    return pid, parts[1] if len(parts) > 1 else ""


def _busy(run_dir: Path, pid: int | None, host: str) -> UserError:
    who = f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "") if pid else "another process"
    stop = f" (`kill {pid}` stops it with a checkpoint that --resume continues)" if pid and not (host and host != socket.gethostname()) else ""
    return UserError(
        f"{run_dir} is in use: another `diffcore train` ({who}) is training into it; wait for it to finish"
        f"{stop}, or choose another --out"
    )


@dataclass
class RunLock:
    """The lock of one run directory, held by this process until :meth:`release`."""

    path: Path
    fd: int | None = None
    note: str | None = None  # set when the lock of a process that died was taken over

    @classmethod
    def acquire(cls, run_dir: Path) -> RunLock:
        path = Path(run_dir) / LOCK
        for _ in range(20):  # retried only if the previous holder removed the file meanwhile
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                lock = cls._take(path, fd)
            except BaseException:
                os.close(fd)
                raise
            if lock is not None:
                return lock
            os.close(fd)
        raise UserError(f"{run_dir}: could not lock {path} (it keeps being replaced)")

    @classmethod
    def _take(cls, path: Path, fd: int) -> RunLock | None:
        pid, host = _holder(os.read(fd, 200).decode("ascii", "replace"))
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            raise _busy(path.parent, pid, host) from None
        except (ImportError, OSError) as e:  # no flock here (Windows, some network file systems): the pid decides
            if isinstance(e, OSError) and e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            if pid and pid != os.getpid() and host in ("", socket.gethostname()) and _alive(pid):
                raise _busy(path.parent, pid, host) from None
        try:
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                return None  # the holder released (removed) it between our open and our lock
        except FileNotFoundError:
            return None
        note = None
        if pid and pid != os.getpid():
            note = f"{path} was left by `diffcore train` pid {pid}, which is no longer running; taken over"
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        return cls(path, fd, note)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it (acquire checks the inode)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


# ---------------------------------------------------------------------- resume
@dataclass
class ResumePoint:
    """The checkpoint a resume continues from: its path, step and tensor shapes."""

    path: Path
    step: int
    shapes: dict[str, tuple[int, ...]]
    notes: list[str] = field(default_factory=list)


def _candidates(run_dir: Path) -> list[Path]:
    folder = run_dir / "checkpoints"
    steps = []
    if folder.is_dir():
        steps = sorted(((int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP.match(p.name))), reverse=True)
    return [folder / "last.ckpt"] + [p for _, p in steps]


def _start_over(run_dir: Path) -> str:
    return (
        f"to start over with the same config: `diffcore train --config {run_dir / 'config.yaml'} --out NEW_RUN` "
        f"(or remove {run_dir} and train into it again)"
    )


def resume_point(run_dir: Path, max_steps: int) -> ResumePoint:
    """The checkpoint ``--resume`` continues from: ``checkpoints/last.ckpt`` if it can be read,
    else the newest readable ``checkpoints/step=N.ckpt`` (with a note saying why); refused when
    there is none, or when it has already trained ``max_steps`` steps."""
    from . import runs

    run_dir = Path(run_dir)
    problems: list[str] = []
    for path in _candidates(run_dir):
        rel = path.relative_to(run_dir)
        if not path.is_file():
            if path.name == "last.ckpt":
                problems.append(f"{rel} is missing")
            continue
        try:
            ckpt = runs.read_lightning_checkpoint(path)
            if not isinstance(ckpt.get("global_step"), int) or "optimizer_states" not in ckpt:
                raise UserError(f"checkpoint {path} holds no training state (global_step, optimizer_states)")
        except UserError as e:
            problems.append(f"{rel} could not be read ({str(e).removeprefix(f'checkpoint {path} ')})")
            continue
        step = int(ckpt["global_step"])
        if step >= max_steps:
            raise UserError(
                f"--resume: the run has already trained {step} steps (training.max_steps={max_steps}); "
                f"pass --max-steps N with N > {step} to continue"
            )
        shapes = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items() if hasattr(v, "shape")}
        notes = [f"{'; '.join(problems)}: resuming from {rel} (step {step})"] if problems else []
        return ResumePoint(path, step, shapes, notes)
    if any("could not be read" in p for p in problems):
        raise UserError(f"--resume: no readable checkpoint in {run_dir / 'checkpoints'}: {'; '.join(problems)}; {_start_over(run_dir)}")
    raise UserError(
        f"--resume: {run_dir} has a config but no checkpoint (training stopped before its first checkpoint "
        f"was written), so there is nothing to resume; {_start_over(run_dir)}"
    )


def check_fits(point: ResumePoint, own: dict[str, tuple[int, ...]], changed: list[str]) -> None:
    """Refuse a resume whose checkpoint does not fit the module the config now builds (before
    anything is written); ``changed`` names the config keys that differ from the run's own."""
    from . import runs

    parts = runs.mismatch(own, point.shapes, " in the checkpoint")
    if not parts:
        return
    cause = f"; changed from the run's config.yaml: {', '.join(changed[:5])}" if changed else ""
    raise UserError(
        f"--resume: {point.path} does not fit the model the config now builds: {', '.join(parts)}{cause}. "
        "Nothing was written; resume without that change, or train a new run with another --out"
    )


def config_changes(before: dict, after: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two config mappings, ``key old -> new``."""
    out = []
    for key in sorted(set(before) | set(after), key=str):
        a, b = before.get(key), after.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_changes(a, b, name + ".")
        elif a != b:
            out.append(f"{name} {a!r} -> {b!r}")
    return out


# ------------------------------------------------------------- the run folder
@dataclass
class Prepared:
    """A locked run directory (rank 0) and, for a resume, the checkpoint it continues from."""

    dir: Path
    lock: RunLock
    start: ResumePoint | None = None
    notes: list[str] = field(default_factory=list)

    def release(self) -> None:
        self.lock.release()


def prepare_run_dir(resolved, run_dir: Path, *, resume: bool) -> Prepared:
    """Create and lock the run directory (a second process training into it is refused with
    the holder's pid); for ``resume``, choose and read the checkpoint. Never overwrites another
    run; config.yaml is written by ``training.train`` once the data and the backbone are built (and
    a resumed checkpoint is known to fit), so a run that fails to start leaves no run behind.
    The caller releases the lock (:meth:`Prepared.release`)."""
    from . import runs

    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file, not a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock.acquire(run_dir)
    except OSError as e:
        raise UserError(f"--out {run_dir}: cannot write there ({e.strerror or e})") from None
    try:
        prepared = Prepared(run_dir, lock, notes=[lock.note] if lock.note else [])
        if resume:
            prepared.start = resume_point(run_dir, resolved.config.training.max_steps)
            prepared.notes += prepared.start.notes
        elif runs.holds_run(run_dir):
            raise UserError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out")
        remove_leftovers(run_dir)
    except BaseException:
        lock.release()
        raise
    return prepared


def check_resume_checkpoint(path: Path, max_steps: int) -> int:
    """The step count of the checkpoint a resume of the run holding ``path`` (its last.ckpt)
    would continue from (:func:`resume_point`)."""
    return resume_point(Path(path).parent.parent, max_steps).step


def changes(run_dir: Path, cfg) -> list[str]:
    """What the resolved config changes in the run's own config.yaml outside ``training`` and
    ``sampling`` (what can change the model; named in a refusal)."""
    import yaml

    try:
        before = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        found = config_changes(before, cfg.model_dump(mode="json")) if isinstance(before, dict) else []
    except (OSError, ValueError, yaml.YAMLError):
        return []
    return [c for c in found if not c.startswith(("training.", "sampling."))]
