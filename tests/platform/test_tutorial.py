"""docs/plugins.md, followed step by step: its files are written into an empty folder, the
package is "installed" (a dist-info on PYTHONPATH with the entry points of the tutorial's
pyproject.toml, as pip would leave it), and then `diffcore plugins`, the tutorial's own tests
(the conformance kit), `diffcore train`, `diffcore sample` and `diffcore edit` run on it."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import run_cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
BLOCK = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
FILE = re.compile(r"^# file: (\S+)( \(append\))?\n")


def tutorial_files(markdown: str) -> dict[str, str]:
    """The files the tutorial's code blocks make, in order (``(append)`` blocks extend a file)."""
    files: dict[str, str] = {}
    for block in BLOCK.findall(markdown):
        m = FILE.match(block)
        if not m:
            continue
        body = block[m.end():]
        if m.group(2):
            assert m.group(1) in files, f"{m.group(1)} is appended to before it is written"
            files[m.group(1)] += body
        else:
            assert m.group(1) not in files, f"{m.group(1)} is written twice"
            files[m.group(1)] = body
    return files


def test_tutorial_blocks_are_found():
    files = tutorial_files(DOC.read_text())
    assert {"diffcore-rings/pyproject.toml", "diffcore-rings/src/diffcore_rings/plugin.py",
            "diffcore-rings/src/diffcore_rings/domain.py", "diffcore-rings/src/diffcore_rings/backbone.py",
            "diffcore-rings/src/diffcore_rings/schedule.py", "diffcore-rings/src/diffcore_rings/sampler.py",
            "diffcore-rings/src/diffcore_rings/sets.py", "diffcore-rings/src/diffcore_rings/editing.py",
            "diffcore-rings/tests/test_rings.py"} <= set(files)
    assert "diffcore_register_samplers" in files["diffcore-rings/src/diffcore_rings/plugin.py"]  # the (append) block


@pytest.fixture
def tutorial(tmp_path, monkeypatch):
    """The tutorial's folder, written from the page, and its package importable in-process."""
    for rel, text in tutorial_files(DOC.read_text()).items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    root = tmp_path / "diffcore-rings"
    monkeypatch.syspath_prepend(str(root / "src"))
    monkeypatch.syspath_prepend(str(root / "tests"))
    yield root
    for name in [m for m in sys.modules if m == "diffcore_rings" or m.startswith("diffcore_rings.") or m == "test_rings"]:
        del sys.modules[name]


def install(root: Path, site: Path) -> dict[str, str]:
    """`pip install -e diffcore-rings`, emulated: a dist-info from its pyproject.toml; the
    returned environment puts it and the package's src/ on PYTHONPATH."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    eps = "".join(f"{k} = {v}\n" for k, v in project["entry-points"]["diffcore"].items())
    (info / "entry_points.txt").write_text(f"[diffcore]\n{eps}")
    return {"PYTHONPATH": os.pathsep.join([str(site), str(root / "src")] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}


@pytest.mark.slow
def test_tutorial_steps_work(tutorial, tmp_path):
    env = install(tutorial, tmp_path / "site")

    # 5. install, list
    proc = run_cli(["--strict-plugins", "plugins", "--json"], **env)
    assert proc.returncode == 0, proc.stderr
    rings = {p["name"]: p for p in json.loads(proc.stdout)}["rings"]
    assert (rings["status"], rings["package"], rings["version"]) == ("ok", "diffcore-rings", "0.1.0")
    assert rings["provides"] == {"recipes": ["rings-mlp"], "domains": ["rings"], "backbones": ["rings-mlp"], "autoencoders": [],
                                 "samplers": ["ancestral"], "schedules": ["logsnr-linear"]}

    # 7. the tutorial's tests: the conformance kit on its plugin and on its variable-size domain
    tests = importlib.import_module("test_rings")
    tests.test_plugin_conforms()
    tests.test_variable_size_domain_conforms()

    # 2. the error a misspelt data option gets (quoted in the tutorial)
    from diffcore import config
    from diffcore.errors import UserError
    from diffcore.registry import registered_plugin

    with registered_plugin(importlib.import_module("diffcore_rings.plugin"), "rings-tutorial"):
        with pytest.raises(UserError) as err:
            config.resolve(plugin="rings-mlp", sets=["data.ringz=3"])
    assert f"`error: {err.value}`" in DOC.read_text()

    # 6. train (a few steps, with the plugin's schedule) and sample (with the plugin's sampler)
    run = tmp_path / "runs" / "rings"
    proc = run_cli(["train", "--plugin", "rings-mlp", "--out", str(run), "--max-steps", "20", "--set", "data.num=256",
                    "--set", "diffusion.schedule=logsnr-linear", "--set", "training.preview_num=50",
                    "--set", "sampling.steps=20", "--no-progress"], cwd=tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert (run / "previews" / "step-0000020" / "rings.png").is_file()
    assert json.loads((run / "domain_state.json").read_text())["scale"] > 0

    out = tmp_path / "samples"
    proc = run_cli(["sample", "--run", str(run), "--num", "200", "--marker-size", "2", "--sampler", "ancestral",
                    "--steps", "10", "--out", str(out)], cwd=tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert (out / "rings.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote 1 file(s)" in proc.stdout

    # 10. edit: y given x; the kept x comes back exactly, with the before/after picture
    out = tmp_path / "edits"
    proc = run_cli(["edit", "--run", str(run), "--input", "1.5,0", "--input", "0,2.5", "--num", "5", "--steps", "10",
                    "--resample", "2", "--out", str(out)], cwd=tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {"rings.png", "edit.png", "edits.csv", "edit.json"}
    assert (out / "edit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [r.split(",") for r in (out / "edits.csv").read_text().splitlines()[1:]]
    assert [x for x, _ in rows] == ["1.500000"] * 5 + ["0.000000"] * 5 and len({y for _, y in rows}) == 10
    with pytest.raises(UserError) as err:  # the error a malformed point gets (quoted in the tutorial)
        importlib.import_module("diffcore_rings.editing").parse_point("1.5")
    assert f"`error: {err.value}`" in DOC.read_text()
