"""The house's rules, read from the code: each layer imports only downwards (by reading every
import statement, those inside functions included), the mathematics loads none of the
platform's libraries (in a fresh interpreter), and no file of the library is a sprawl."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "diffcore"

# layer -> the layers of diffcore it may import (itself included), and the third-party
# top-level packages it may import beside the standard library.
LAYERS = {
    "math": ({"math"}, {"torch", "numpy"}),
    "nn": ({"nn"}, {"torch", "numpy"}),
    "contract": ({"contract", "math", "nn"}, {"torch", "numpy", "pydantic", "pluggy"}),
    "platform": ({"platform", "contract", "math", "nn", "face"},
                 {"torch", "numpy", "pydantic", "pydantic_core", "pluggy", "lightning", "typer", "yaml", "safetensors", "matplotlib"}),
    "testing": ({"testing", "platform", "contract", "math", "nn", "face"}, {"torch", "numpy", "pydantic", "pluggy"}),
    # diffcore/__init__.py, _compat.py: the contract, the kit and diffcore.load (the platform) are
    # imported on first use only (test_core_imports checks that `import diffcore` loads none of them)
    "face": ({"face", "math", "nn", "contract", "testing", "platform"}, set()),
}


def layer_of(path: Path) -> str:
    rel = path.relative_to(LIB)
    return rel.parts[0] if len(rel.parts) > 1 else "face"


def module_parts(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported(path: Path) -> list[tuple[str, int]]:
    """Absolute names of every module ``path`` imports, with the line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = module_parts(path) if path.name == "__init__.py" else module_parts(path)[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x: each x may be a module
                    out += [(f"{mod}.{a.name}", node.lineno) for a in node.names]
                    continue
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            args = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            out += [(a if not a.startswith(".") else ".".join(pkg) + a, node.lineno) for a in args]
    return out


def target_layer(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "diffcore":
        return None
    if len(parts) == 1 or parts[1] in ("_compat",):
        return "face"
    return parts[1] if parts[1] in LAYERS else "face"


FILES = sorted(LIB.rglob("*.py"))


def test_every_layer_imports_only_downwards():
    offences = []
    for path in FILES:
        layer = layer_of(path)
        ok_layers, ok_third = LAYERS[layer]
        for name, line in imported(path):
            top = name.split(".")[0]
            if top == "diffcore":
                tl = target_layer(name)
                if tl not in ok_layers:
                    offences.append(f"{path.relative_to(ROOT)}:{line} ({layer}) imports {name} ({tl})")
            elif top not in sys.stdlib_module_names and top not in ok_third and top != "__future__":
                offences.append(f"{path.relative_to(ROOT)}:{line} ({layer}) imports {top}")
    assert not offences, "\n".join(offences)


def test_the_rule_can_fail(tmp_path):
    """The reader sees an upward import, also a relative one inside a function."""
    bad = LIB / "math" / "_probe_upward.py"
    bad.write_text("def f():\n    from ..platform import config\n")
    try:
        names = [n for n, _ in imported(bad)]
    finally:
        bad.unlink()
    assert "diffcore.platform" in names and target_layer("diffcore.platform") == "platform"


def test_nothing_in_the_library_imports_the_kit():
    users = [str(p.relative_to(ROOT)) for p in FILES if layer_of(p) not in ("testing", "face")
             and any(target_layer(n) == "testing" for n, _ in imported(p))]
    assert not users


def test_no_library_file_is_a_sprawl():
    long = {str(p.relative_to(ROOT)): n for p in FILES if (n := len(p.read_text(encoding="utf-8").splitlines())) > 420}
    assert not long, long


@pytest.mark.parametrize("module", ["diffcore.math", "diffcore.schedules", "diffcore.nn", "diffcore"])
def test_the_mathematics_loads_no_platform_library(module):
    script = (
        f"import sys, json, {module}, diffcore.sampling, diffcore.testing.targets; "
        "print(json.dumps(sorted(m for m in ('pluggy', 'pydantic', 'lightning', 'typer', 'yaml', 'diffcore.platform') if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_old_import_paths_give_the_same_modules():
    import diffcore
    import diffcore.config
    import diffcore.domain
    import diffcore.hookspecs
    import diffcore.registry
    import diffcore.sampling.base
    import diffcore.schedules
    from diffcore.contract import domain, hooks
    from diffcore.platform import config, registry

    assert diffcore.schedules is diffcore.math.schedules
    assert diffcore.domain is domain and diffcore.hookspecs is hooks
    assert diffcore.registry is registry and diffcore.config is config
    assert diffcore.domain.__spec__.name == "diffcore.contract.domain"  # the module keeps its own spec
    assert diffcore.sampling.base.start_time is diffcore.sampling.start_time
    assert diffcore.Domain is domain.Domain and diffcore.hookimpl is hooks.hookimpl
    assert diffcore.domain.Batch is domain.Batch
