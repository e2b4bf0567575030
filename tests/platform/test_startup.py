"""Start-up: ``import diffcore``, ``diffcore --help`` and ``diffcore --version`` load neither
torch nor Lightning (every public name is imported on first use); the help texts that need
them are written when a command's help is shown."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

HEAVY = ("torch", "lightning", "pluggy")

# Runs the commands in-process, then says which heavy libraries they imported.
SCRIPT = r"""
import json, sys
import diffcore, diffcore.platform.cli
from diffcore.platform.cli import main
dir(diffcore), diffcore.__version__
for argv in ARGVS:
    try:
        main(argv)
    except SystemExit as e:
        assert e.code in (0, None), (argv, e.code)
print(json.dumps(sorted(m for m in HEAVY if m in sys.modules)))
"""


def _loaded(*argvs: list[str]) -> list[str]:
    script = SCRIPT.replace("ARGVS", repr(argvs)).replace("HEAVY", repr(HEAVY))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_diffcore_and_the_cli_loads_no_torch():
    assert _loaded() == []


def test_help_and_version_load_no_torch():
    assert _loaded(["--help"], ["--version"]) == []


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diffcore.platform.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_and_version_run_as_the_command():
    top = run_cli("--help")
    assert top.returncode == 0, top.stderr
    assert "Commands:" in top.stdout and "plugins" in top.stdout
    version = run_cli("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("diffcore ")


def test_help_texts_that_need_torch_are_written_when_shown():
    from diffcore.cli import app
    from diffcore.math import sampling
    from diffcore.platform.config import TrainingConfig

    train = CliRunner().invoke(app, ["train", "--help"], terminal_width=1000)
    assert train.exit_code == 0, train.output
    assert TrainingConfig.model_fields["max_steps"].description in train.stdout
    sample = CliRunner().invoke(app, ["sample", "--help"], terminal_width=1000)
    assert sample.exit_code == 0, sample.output
    assert ", ".join(s.name for s in sampling.specs() if s.owner is None) in sample.stdout
    assert "(help " not in train.stdout + sample.stdout  # no placeholder left


def test_every_public_name_resolves():
    import diffcore
    from diffcore import DiffusionLoss, hookimpl  # noqa: F401
    from diffcore.math import sampling, schedules

    assert set(diffcore.__all__) <= set(dir(diffcore))
    for name in diffcore.__all__:
        assert getattr(diffcore, name) is not None, name
    assert diffcore.schedules is schedules and diffcore.generate is sampling.generate
    assert diffcore.schedules.get("cosine") is not None
    assert diffcore.UserError is diffcore.contract.errors.UserError
