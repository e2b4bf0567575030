"""The shell examples of README.md and docs/cli.md run as written (the cheap ones).

What is extracted: every command line of a ```bash block (backslash continuations joined,
``# comments`` dropped, ``a && b`` split), and every ``$ diffcore ...`` line of a plain
transcript block together with the output printed under it, which must appear in the
command's output (``...`` in the doc stands for any text). Every command is either run or
skipped for a reason listed below, so an example added to the docs is never silently ignored:
an unclassified one fails the test.

Run, each in one temporary folder with ``python -m diffcore.platform.cli`` for ``diffcore``:
every ``--help`` line, ``diffcore plugins``, ``diffcore schedule ...`` (its table compared with
the doc's), the two error transcripts (an unknown config key; a pickled ``evil.ckpt``, made
here), and against a tiny image-unet run trained here as ``runs/digits`` (8x8 digits, 2 steps,
``sampling.steps=3``, a checkpoint at step 2): every ``sample``, ``edit`` (on small
``three.png``/``sketch.png`` made here) and ``evaluate --list`` line on ``runs/digits``, and
``--domain-help``. One substitution: ``step=2000.ckpt`` becomes the tiny run's ``step=2.ckpt``.

Skipped, and why:
- ``pip install ...`` and ``pytest ...``: they install packages or run the whole suite;
- ``diffcore train`` without ``--help`` (other than the error transcript): the defaults
  train for minutes, ``runs/faces`` needs a folder ``~/faces``, ``my-run.yaml`` is the
  reader's own file, ``--accelerator gpu --devices 4`` needs four GPUs (the tiny run above
  stands in for training);
- ``diffcore evaluate`` without ``--list``: 1,000 samples (and 1,000 DDPM steps), minutes;
- lines on ``runs/conformers``: they need a trained molecule-coords run (tests/plugins covers
  the molecule sample options and their ``--domain-help``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/cli.md")
TINY_IMAGE = [
    "--set", "data.resolution=8", "--set", "backbone.base_channels=8", "--set", "backbone.num_res_blocks=1",
    "--set", "backbone.attention_resolutions=[4]", "--set", "training.batch_size=8", "--set", "training.preview_num=2",
    "--set", "training.checkpoint_every=2", "--set", "sampling.steps=3", "--max-steps", "2", "--no-progress",
    "--accelerator", "cpu", "--threads", "1",
]


@dataclass
class Example:
    where: str
    argv: list[str]
    expected: list[str] = field(default_factory=list)  # transcript output under a `$ ` line


def _commands(text: str) -> list[list[str]]:
    """One bash line (continuations already joined) as commands: comments dropped, `&&` split."""
    words = shlex.split(text, comments=True)
    out, cur = [], []
    for w in words:
        if w == "&&":
            out.append(cur)
            cur = []
        else:
            cur.append(w)
    return [c for c in out + [cur] if c]


def examples() -> list[Example]:
    found = []
    for name in DOCS:
        lines = (ROOT / name).read_text().splitlines()
        lang, i = None, 0
        while i < len(lines):
            line, where = lines[i], f"{name}:{i + 1}"
            if line.startswith("```"):
                lang = None if lang is not None else (line[3:].strip() or "text")
            elif lang == "bash" and line.strip():
                while line.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    line = line[:-1] + " " + lines[i].strip()
                found += [Example(where, argv) for argv in _commands(line)]
            elif lang == "text" and line.startswith("$ "):
                ex = Example(where, shlex.split(line[2:], comments=True))
                while i + 1 < len(lines) and not lines[i + 1].startswith(("$ ", "```")):
                    i += 1
                    ex.expected.append(lines[i])
                found.append(ex)
            i += 1
    return found


def classify(ex: Example) -> str | None:
    """None: run it; else why it is skipped (the reasons of the module docstring)."""
    argv = ex.argv
    if argv[0] in ("pip", "pytest"):
        return "installs packages or runs the whole suite"
    assert argv[0] == "diffcore", f"{ex.where}: an example that is neither diffcore, pip nor pytest: {argv}"
    if "--help" in argv or argv[1] in ("plugins", "schedule"):
        return None
    run = argv[argv.index("--run") + 1] if "--run" in argv else None
    if argv[1] == "train":
        return None if ex.expected and ex.expected[0].startswith("error:") else "trains for minutes"
    if run == "runs/conformers":
        return "needs a trained molecule-coords run"
    if argv[1] == "evaluate" and "--list" not in argv:
        return "evaluates 1,000 samples"
    if argv[1] in ("sample", "edit", "evaluate") and run == "runs/digits":
        return None
    raise AssertionError(f"{ex.where}: unclassified example {shlex.join(argv)}: run it here or list why it is skipped")


def _matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def _check_transcript(ex: Example, output: str) -> None:
    """Every doc line appears in the output, in order; for `diffcore plugins`, the entries of
    the plugins installed here (the doc's failing `my-plugin` is an illustration)."""
    out = output.splitlines()
    expected = ex.expected
    if ex.argv[1] == "plugins":
        installed = {ln.split()[0] for ln in out if ln and not ln[0].isspace()}
        kept, keep = [], False
        for ln in expected:
            if ln and not ln[0].isspace():
                keep = ln.split()[0] in installed
            if keep:
                kept.append(ln)
        assert kept, f"{ex.where}: none of the documented plugins is installed:\n{output}"
        expected = kept
    j = 0
    for want in expected:
        while j < len(out) and not _matches(want, out[j]):
            j += 1
        assert j < len(out), f"{ex.where}: {want!r} is not in the output of {shlex.join(ex.argv)}:\n{output}"
        j += 1


def test_every_example_is_run_or_skipped_for_a_reason():
    exs = examples()
    assert len(exs) >= 15, [e.argv for e in exs]
    for ex in exs:
        classify(ex)  # raises for an unclassified one
    run = [e for e in exs if classify(e) is None]
    kinds = {e.argv[1] for e in run}
    assert {"plugins", "schedule", "sample", "edit", "evaluate", "train"} <= kinds, kinds
    assert any("--domain-help" in e.argv for e in run)


def _inputs(cwd: Path) -> None:
    from PIL import Image

    a = np.zeros((8, 8), np.uint8)
    a[1:7, 2:6] = 255
    a[2:6, 3:5] = 0
    Image.fromarray(a).save(cwd / "three.png")
    Image.fromarray(255 - a).save(cwd / "sketch.png")
    import argparse

    import torch

    torch.save({"state_dict": {}, "hyper": argparse.Namespace(lr=1)}, cwd / "evil.ckpt")  # a pickled object


def test_doc_examples_run(tmp_path):
    res = run_cli(["train", "--plugin", "image-unet", "--out", "runs/digits", *TINY_IMAGE], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "runs/digits/checkpoints/step=2.ckpt").is_file()
    _inputs(tmp_path)
    ran = []
    for ex in examples():
        if classify(ex) is not None:
            continue
        args = [a.replace("step=2000.ckpt", "step=2.ckpt") for a in ex.argv[1:]]
        res = run_cli(args, cwd=tmp_path, timeout=120)
        output = res.stdout + res.stderr
        error = bool(ex.expected) and ex.expected[0].startswith("error:")
        assert res.returncode == (2 if error else 0), f"{ex.where}: {shlex.join(ex.argv)} exited {res.returncode}:\n{output}"
        assert "Traceback" not in output, f"{ex.where}: {shlex.join(ex.argv)}:\n{output}"
        if ex.expected:
            _check_transcript(ex, output)
        if "--plot" in args:
            assert (tmp_path / args[args.index("--plot") + 1]).is_file()
        if "--out" in args and args[0] in ("sample", "edit"):
            assert any((tmp_path / args[args.index("--out") + 1]).iterdir())
        ran.append(ex.argv[1])
    assert ran.count("sample") >= 3 and ran.count("edit") >= 4, ran
