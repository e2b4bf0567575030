"""Shared fixtures: the toy plugin (tests/toyplug), in-process or as a fake installed
distribution for subprocess runs of the CLI."""

from __future__ import annotations

import os

# Tests run many small tensor ops: one intra-op thread is faster than two (and far faster on
# a loaded machine), and subprocesses (CLI, DDP) inherit it. Must be set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def make_site(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str] | None = None, packages=("toyplug",)) -> Path:
    """A folder that looks like site-packages holding distribution ``dist`` (version 0.1)
    with ``entry_points`` in group ``diffcore``, the test packages, and extra one-file
    ``modules`` (name -> source). Put it on sys.path/PYTHONPATH and importlib.metadata
    finds the entry points."""
    # pip names the folder with underscores; importlib.metadata misreads a hyphenated one
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    eps = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[diffcore]\n{eps}")
    for pkg in packages:
        if not (site / pkg).exists():
            shutil.copytree(TESTS / pkg, site / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for name, src in (modules or {}).items():
        (site / f"{name}.py").write_text(src)
    return site


@pytest.fixture(scope="session")
def toy_site(tmp_path_factory) -> Path:
    """A fake installed distribution ``toyplug`` declaring ``toy = toyplug.plugin``."""
    return make_site(tmp_path_factory.mktemp("site"), "toyplug", {"toy": "toyplug.plugin"})


def cli_env(site: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DIFFCORE_STRICT_PLUGINS", None)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def run_cli(args: list[str], site: Path | None = None, cwd: Path | None = None, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    """``python -m diffcore.platform.cli ARGS`` in a subprocess (DDP re-launches exactly this)."""
    return subprocess.run(
        [sys.executable, "-m", "diffcore.platform.cli", *args],
        capture_output=True, text=True, cwd=cwd, env=cli_env(site, **env), timeout=timeout,
    )


@pytest.fixture
def toy_plugin():
    """The toy plugin registered in-process for one test (unregistered afterwards)."""
    import toyplug.plugin

    from diffcore.registry import registered_plugin

    with registered_plugin(toyplug.plugin, "toy") as reg:
        yield reg


# Tiny settings for runs of the toy recipe: a few steps, no periodic checkpoints.
TINY = ["--set", "training.max_steps=4", "--set", "training.batch_size=16", "--set", "training.preview_num=4", "--no-progress"]
