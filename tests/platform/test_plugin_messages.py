"""Broken plugins, as a user meets them: the message when a recipe or domain belongs to a plugin
that failed to load, one warning line per command, strict-mode messages in the words the user
used, plugins that call sys.exit() or raise KeyboardInterrupt at import, and third-party
plugins that take a built-in plugin's name (issue 16, item 4)."""

from __future__ import annotations

import textwrap

import pytest
from conftest import make_site
from typer.testing import CliRunner

from diffcore.cli import app
from diffcore.platform.plugin_status import OVERRIDE_ENV, STRICT_ENV
from diffcore.registry import get_registry, reset_registry

MODULES = {
    "raise_at_import": 'raise RuntimeError("broken at import")\n',
    "exit_at_import": "import sys\nsys.exit(3)\n",
    "interrupt_at_import": "raise KeyboardInterrupt\n",
    # registers a recipe, then fails in a later hook: the recipe's name is known to belong to it
    "fails_later": textwrap.dedent(
        """
        from diffcore.hookspecs import Recipe, hookimpl

        @hookimpl
        def diffcore_register_recipes(register):
            register(Recipe(name="halfway", domain="toy2d", backbone="toy-mlp"))

        @hookimpl
        def diffcore_register_schedules(register):
            raise RuntimeError("boom in schedules")
        """
    ),
    # an entry point named like the built-in image plugin
    "imposter": textwrap.dedent(
        """
        from diffcore.hookspecs import Recipe, hookimpl

        @hookimpl
        def diffcore_register_recipes(register):
            register(Recipe(name="image-unet", domain="toy2d", backbone="toy-mlp"))
        """
    ),
    # a plugin under its own name that registers the built-in image domain's name
    "squatter": textwrap.dedent(
        """
        from diffcore.hookspecs import hookimpl
        from toyplug.domain import ToyDomain

        class Image(ToyDomain):
            name = "image"

        @hookimpl
        def diffcore_register_domains(register):
            register(Image)
        """
    ),
}
EPS = {
    "toy": "toyplug.plugin",
    "broken": "raise_at_import",
    "exiting": "exit_at_import",
    "interrupting": "interrupt_at_import",
    "raising": "fails_later",
    "image-unet": "imposter",
    "squatter": "squatter",
}
BROKEN = ["broken", "exiting", "interrupting", "raising", "image-unet", "squatter"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return make_site(tmp_path_factory.mktemp("site"), "thirdparty", EPS, MODULES)


@pytest.fixture
def installed(site, monkeypatch):
    """The fake distribution on sys.path beside the built-in plugins, a fresh registry."""
    monkeypatch.syspath_prepend(str(site))
    for var in (STRICT_ENV, OVERRIDE_ENV):
        monkeypatch.delenv(var, raising=False)
    reset_registry()
    yield
    reset_registry()


def invoke(*args: str, **env):
    return CliRunner().invoke(app, list(args), env={STRICT_ENV: None, **env})


def error_line(res) -> str:
    """The command's one `error:` line (exit code 2, no traceback)."""
    assert res.exit_code == 2, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert "Traceback" not in res.output
    return errors[0]


def warnings(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("warning:")]


def test_plugins_are_isolated_and_builtin_names_kept(installed):
    try:
        reg = get_registry()
    except KeyboardInterrupt:  # pragma: no cover - what the loader must prevent
        pytest.fail("a plugin's KeyboardInterrupt at import escaped the loader")
    status = {key: p.status for key, p in reg.plugins.items()}
    assert status["toy"] == "ok" and status["image-unet"] == "ok"
    assert reg.plugins["image-unet"].package == "diffcore"  # the built-in one kept its name
    assert status["exiting"].startswith("failed to load: SystemExit: the plugin called sys.exit(3) (at ")
    assert "exit_at_import.py:2" in status["exiting"]
    assert status["interrupting"].startswith("failed to load: KeyboardInterrupt (at ")
    assert status["image-unet (thirdparty)"] == (
        f"refused: 'image-unet' is the name of a built-in plugin; rename the entry point, or set {OVERRIDE_ENV}=image-unet "
        "to replace the built-in one")
    assert status["squatter"].startswith(
        f"failed in diffcore_register_domains: ValueError: domain 'image' is already registered by the built-in plugin "
        f"'image-unet'; choose another name, or set {OVERRIDE_ENV}=image-unet to replace the built-in plugin")
    assert reg.recipe("image-unet").domain == "image" and reg.domain("image").__module__.startswith("diffcore_image")
    assert sorted(p.name for p in reg.failed()) == sorted(BROKEN)


def test_a_failed_plugins_recipe_says_so_and_every_command_warns_once(installed):
    res = invoke("train", "--plugin", "broken", "--out", "unused")
    assert error_line(res).startswith("error: plugin 'broken' failed to load: RuntimeError: broken at import (at ")
    assert error_line(res).endswith("raise_at_import.py:1); see `diffcore plugins`")
    assert warnings(res) == [f"warning: {len(BROKEN)} plugin(s) failed to load and were skipped: {', '.join(BROKEN)}; "
                             "see `diffcore plugins` (--strict-plugins makes this an error)"]
    # a recipe the plugin registered before it failed in a later hook
    res = invoke("train", "--plugin", "halfway", "--out", "unused")
    assert error_line(res).startswith("error: plugin 'raising' failed to load: failed in diffcore_register_schedules: "
                                      "RuntimeError: boom in schedules")
    # a name nobody provides: the usual message, pointing at the broken plugins
    res = invoke("train", "--plugin", "nowhere", "--out", "unused")
    assert "unknown plugin (recipe) 'nowhere'" in error_line(res) and "failed to load, and may provide it: broken" in error_line(res)
    # a command that succeeds warns once too; `diffcore plugins`, which lists them, does not
    res = invoke("schedule", "linear")
    assert res.exit_code == 0 and len(warnings(res)) == 1, res.output
    res = invoke("plugins")
    assert res.exit_code == 0 and res.stderr == "", res.stderr
    assert "image-unet  [ok]  diffcore" in res.stdout and "image-unet  [FAILED]  thirdparty 0.1" in res.stdout
    assert "exiting  [FAILED]" in res.stdout and "sys.exit(3)" in res.stdout


def test_strict_mode_names_the_flag_or_the_variable(installed, tmp_path):
    run = tmp_path / "run"  # never read: the plugins fail first
    res = invoke("--strict-plugins", "sample", "--run", str(run))
    line = error_line(res)
    assert line.startswith("error: plugin '") and line.endswith("(drop --strict-plugins to skip broken plugins)"), line
    assert str(run) not in line  # not prefixed with the run's config path
    reset_registry()
    res = invoke("sample", "--run", str(run), **{STRICT_ENV: "1"})
    assert error_line(res).endswith(f"(unset {STRICT_ENV} to skip broken plugins)")
    assert warnings(res) == []


def test_an_explicit_override_replaces_a_builtin(installed, monkeypatch):
    monkeypatch.setenv(OVERRIDE_ENV, "image-unet")
    reset_registry()
    reg = get_registry()
    assert reg.plugins["image-unet"].package == "thirdparty" and reg.plugins["image-unet"].ok
    assert reg.recipe("image-unet").domain == "toy2d"
    assert reg.plugins["squatter"].ok and reg.domain("image").__module__ == "squatter"
    assert reg.plugins["image-unet (diffcore)"].overridden
    assert "image-unet" not in [p.name for p in reg.failed()]  # left out on purpose: no warning about it
    res = invoke("plugins")
    assert "image-unet  [overridden]  diffcore" in res.stdout, res.stdout
    assert f"note: overridden: left out by {OVERRIDE_ENV}" in res.stdout
