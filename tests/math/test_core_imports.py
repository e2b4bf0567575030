"""The core never imports a plugin or a domain library (torchaudio, rdkit, PIL, sklearn,
soundfile): checked by importing every core module in a fresh interpreter, and by reading
the source (imports inside functions included)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "diffcore"
FORBIDDEN = ("torchaudio", "rdkit", "PIL", "sklearn", "soundfile")


def _forbidden(name: str) -> bool:
    top = name.split(".")[0]
    return top in FORBIDDEN or top.startswith("diffcore_")


# Lightning (through torchmetrics) imports PIL itself, so the check compares sys.modules
# after importing the core's own dependencies with sys.modules after importing the core:
# whatever is new must not be forbidden. The mathematics must not pull them in at all.
SCRIPT = r"""
import importlib, json, pkgutil, sys
def bad(): return sorted(n for n in sys.modules if n.split(".")[0] in FORBIDDEN or n.startswith("diffcore_"))
import diffcore
math_only = bad()
import lightning, lightning.pytorch, matplotlib, typer, pydantic, pluggy, yaml, safetensors.torch
baseline = set(bad())
for m in pkgutil.walk_packages(diffcore.__path__, "diffcore."):
    importlib.import_module(m.name)
from diffcore.registry import get_registry  # no plugin is loaded until the registry is used
print(json.dumps({"math_only": math_only, "added": sorted(set(bad()) - baseline)}))
"""


def test_importing_the_core_loads_no_domain_library():
    script = SCRIPT.replace("FORBIDDEN", repr(FORBIDDEN))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"math_only": [], "added": []}


def test_core_source_imports_no_domain_library():
    offenders = []
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__"):
                names = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            offenders += [f"{path.relative_to(CORE.parent)}:{node.lineno}: {n}" for n in names if _forbidden(n)]
    assert offenders == []
