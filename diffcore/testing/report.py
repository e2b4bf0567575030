"""What a conformance check found (:class:`Report`, :class:`ConformanceError`) and the helpers
every family of checks shares: :class:`_Checker` collects each outcome, :func:`run_checks`
runs a family's checks under a fixed seed and finishes its report."""

from __future__ import annotations

import contextlib
import os
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..contract.domain import Domain

_KIT_DIR = os.path.dirname(os.path.abspath(__file__))


class ConformanceError(AssertionError):
    """Raised with every problem a check found; ``.report`` holds the :class:`Report`."""

    def __init__(self, report: "Report"):
        super().__init__(str(report))
        self.report = report


@dataclass
class Report:
    """What a check found. ``problems`` break the contract (each says what to fix);
    ``warnings`` are advice; ``passed`` and ``skipped`` say what was (not) checked."""

    subject: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: the set-up domain instance (``check_domain``), for ``check_backbone``
    domain: Domain | None = None
    _keep: list[Any] = field(default_factory=list, repr=False)  # temporary folders alive with the report

    @property
    def ok(self) -> bool:
        return not self.problems

    def extend(self, other: "Report") -> None:
        self.problems += other.problems
        self.warnings += other.warnings
        self.passed += other.passed
        self.skipped += other.skipped
        self._keep += other._keep

    def raise_on_problems(self) -> "Report":
        if self.problems:
            raise ConformanceError(self)
        return self

    def __str__(self) -> str:
        head = f"diffcore conformance of {self.subject}: "
        head += "OK" if self.ok else f"{len(self.problems)} problem(s)"
        lines = [head]
        lines += [f"  - {p}" for p in self.problems]
        if self.warnings:
            lines.append("  warnings:")
            lines += [f"  * {w}" for w in self.warnings]
        tail = f"  ({len(self.passed)} check(s) passed"
        tail += f", {len(self.skipped)} skipped: {'; '.join(self.skipped)})" if self.skipped else ")"
        lines.append(tail)
        return "\n".join(lines)


class _Stop(Exception):
    """A check that later checks depend on failed (already reported)."""


def _describe(exc: BaseException) -> str:
    """``Type: message (at file:line)``, the first line of the message and the innermost frame
    outside the kit (where the author of the checked code looks)."""
    msg = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")
    if len(msg) > 1:
        text += " ..."
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.dirname(os.path.abspath(f.filename)) != _KIT_DIR and not f.filename.startswith("<")]
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


class _Checker:
    """Collects the outcome of each check under a prefix such as ``domain 'points'``."""

    def __init__(self, report: Report, prefix: str):
        self.report, self.prefix = report, prefix

    def _p(self, what: str) -> str:
        return f"{self.prefix}: {what}" if self.prefix else what

    def ok(self, what: str) -> None:
        self.report.passed.append(self._p(what))

    def fail(self, what: str, fix: str = "") -> None:
        self.report.problems.append(self._p(what) + (f". Fix: {fix}" if fix else ""))

    def warn(self, what: str) -> None:
        self.report.warnings.append(self._p(what))

    def skip(self, what: str) -> None:
        self.report.skipped.append(self._p(what))

    def expect(self, cond: bool, what: str, problem: str, fix: str = "") -> bool:
        if cond:
            self.ok(what)
        else:
            self.fail(problem, fix)
        return bool(cond)

    @contextlib.contextmanager
    def running(self, what: str, fix: str = "", stop: bool = True) -> Iterator[None]:
        """Run a step; an exception becomes a problem (and stops dependent checks if ``stop``)."""
        try:
            yield
        except _Stop:
            raise
        except Exception as e:  # noqa: BLE001 - every failure of plugin code is a finding
            self.fail(f"{what} raised {_describe(e)}", fix)
            if stop:
                raise _Stop() from e

    def tmpdir(self) -> Path:
        """A temporary folder that lives as long as the report."""
        d = tempfile.TemporaryDirectory(prefix="diffcore-conformance-")
        self.report._keep.append(d)
        return Path(d.name)


@contextlib.contextmanager
def _seeded() -> Iterator[None]:
    """Run with the global RNG seeded (the same report every run, even for plugin code that
    draws from it) and restored afterwards (the caller's random stream is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def finish(report: Report, raise_on_failure: bool) -> Report:
    return report.raise_on_problems() if raise_on_failure else report


def run_checks(subject: str, checks: Callable[[_Checker], None], report: Report | None, raise_on_failure: bool) -> Report:
    """Run ``checks`` with a checker prefixed by ``subject``, seeded; a :class:`_Stop` ends
    them. Into ``report`` if given (then it is the caller's to raise), else a new one."""
    rep = report if report is not None else Report(subject)
    try:
        with _seeded():
            checks(_Checker(rep, subject))
    except _Stop:
        pass
    return finish(rep, raise_on_failure and report is None)
