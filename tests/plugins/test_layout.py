"""The three built-in plugins share one layout: ``plugin.py`` (the hooks, recipes and
registration), ``domain.py``, ``data.py``, ``backbone.py`` (the network, its Options and its
build function, together), ``writer.py``, ``metrics.py``; they import only diffcore's public
API (docs/plugins.md) and never each other."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
NAMES = ["diffcore_image", "diffcore_audio", "diffcore_molecule"]
LAYOUT = {"__init__", "plugin", "domain", "data", "backbone", "writer", "metrics"}
PUBLIC = {"diffcore", "diffcore.nn", "diffcore.schedules", "diffcore.sampling", "diffcore.testing"}


def absolute_imports(path: Path) -> list[tuple[str, int]]:
    """Every absolute module name ``path`` imports (inside functions too), with the line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            out.append((node.module, node.lineno))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_the_shared_layout(name):
    modules = {p.stem for p in (PLUGINS / name).glob("*.py")}
    assert LAYOUT <= modules, f"{name} lacks {sorted(LAYOUT - modules)}"


@pytest.mark.parametrize("name", NAMES)
def test_only_the_public_api_and_no_other_plugin(name):
    offences = []
    for path in sorted((PLUGINS / name).glob("*.py")):
        for mod, line in absolute_imports(path):
            top = mod.split(".")[0]
            if (top == "diffcore" and mod not in PUBLIC) or (top.startswith("diffcore_") and top != name):
                offences.append(f"{path.relative_to(PLUGINS)}:{line} imports {mod}")
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("name", NAMES)
def test_the_backbone_its_options_and_builder_live_in_backbone_py(name):
    plugin = importlib.import_module(f"{name}.plugin")
    specs = []
    plugin.diffcore_register_backbones(specs.append)
    assert specs
    for spec in specs:
        assert spec.build.__module__ == spec.Options.__module__ == f"{name}.backbone", spec.name
    tree = ast.parse((PLUGINS / name / "plugin.py").read_text(encoding="utf-8"))
    assert not [n.name for n in tree.body if isinstance(n, ast.ClassDef)], "plugin.py holds the hooks only"
