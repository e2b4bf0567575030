"""Plugins: discovery through entry points, in-process registration, broken plugins."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from conftest import make_site, run_cli

from diffcore import sampling, schedules
from diffcore.errors import UserError
from diffcore.hookspecs import Recipe, hookimpl
from diffcore.registry import PluginError, get_registry, registered_plugin, reset_registry

# Entry points of broken plugins, beside the working toy plugin.
BROKEN = {
    # fails to import (a dependency that is not installed)
    "broken_import_mod": "import not_a_real_dependency_xyz\n",
    # a hook raises after registering something: nothing of it may stay registered
    "raising_mod": textwrap.dedent(
        """
        from diffcore.hookspecs import hookimpl

        @hookimpl
        def diffcore_register_schedules(register):
            register("half-registered", lambda **kw: None)

        @hookimpl
        def diffcore_register_recipes(register):
            raise RuntimeError("boom in recipes")
        """
    ),
    # registers a recipe name that the toy plugin already has
    "duplicate_mod": textwrap.dedent(
        """
        from diffcore.hookspecs import Recipe, hookimpl

        @hookimpl
        def diffcore_register_recipes(register):
            register(Recipe(name="toy", domain="toy2d", backbone="toy-mlp"))
        """
    ),
    # a typo in a hook name, which pluggy alone would ignore silently
    "typo_mod": textwrap.dedent(
        """
        from diffcore.hookspecs import hookimpl

        @hookimpl
        def diffcore_register_recipe(register):
            pass
        """
    ),
}
BROKEN_EPS = {
    "toy": "toyplug.plugin",
    "broken-import": "broken_import_mod",
    "raising": "raising_mod",
    "duplicate": "duplicate_mod",
    "typo": "typo_mod",
}


@pytest.fixture
def broken_site(tmp_path):
    return make_site(tmp_path / "site", "brokenplugs", BROKEN_EPS, BROKEN)


def test_discovery_through_entry_points(toy_site):
    proc = run_cli(["plugins", "--json"], site=toy_site)
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    toy = plugins["toy"]
    assert toy["status"] == "ok"
    assert (toy["package"], toy["version"]) == ("toyplug", "0.1")
    assert toy["provides"]["recipes"] == ["toy"]
    assert toy["provides"]["domains"] == ["toy2d"]
    assert toy["provides"]["backbones"] == ["toy-mlp"]
    assert toy["provides"]["schedules"] == ["toy-linear"]


class InProcessPlugin:
    """A plugin object (not a module): hooks as methods."""

    @hookimpl
    def diffcore_register_recipes(self, register):
        register(Recipe(name="inproc-recipe", domain="toy2d", backbone="toy-mlp"))

    @hookimpl
    def diffcore_register_samplers(self, register):
        register("inproc-sampler", sampling.get("ddim"))

    @hookimpl
    def diffcore_register_schedules(self, register):
        register("inproc-schedule", schedules.cosine)


def test_plugin_registered_in_process_for_one_test(toy_plugin):
    with registered_plugin(InProcessPlugin(), "inproc") as reg:
        assert reg.plugins["inproc"].ok
        assert reg.recipe("inproc-recipe").backbone == "toy-mlp"
        assert "inproc-sampler" in sampling.names()
        assert schedules.get("inproc-schedule", num_steps=10).num_steps == 10
    reg = get_registry()
    assert "inproc" not in reg.plugins and "inproc-recipe" not in reg.recipes
    assert "inproc-sampler" not in sampling.names()
    assert "inproc-schedule" not in schedules.names()
    assert "toy" in reg.recipes  # the fixture's plugin is still there


def test_unknown_recipe_lists_valid_names(toy_plugin):
    with pytest.raises(UserError) as e:
        get_registry().recipe("toi")
    assert "unknown plugin (recipe) 'toi'" in str(e.value)
    assert "toy" in str(e.value) and "did you mean 'toy'" in str(e.value)


def test_broken_plugins_reported_and_isolated(broken_site, monkeypatch):
    monkeypatch.syspath_prepend(str(broken_site))
    monkeypatch.delenv("DIFFCORE_STRICT_PLUGINS", raising=False)
    reset_registry()
    try:
        reg = get_registry()
        status = {name: p.status for name, p in reg.plugins.items()}
        assert status["toy"] == "ok"
        assert "No module named 'not_a_real_dependency_xyz'" in status["broken-import"]
        assert "failed in diffcore_register_recipes: RuntimeError: boom in recipes" in status["raising"]
        assert "raising_mod.py" in status["raising"]  # where the plugin author looks
        assert "recipe 'toy' is already registered by plugin 'toy'" in status["duplicate"]
        assert "unknown hook(s) diffcore_register_recipe" in status["typo"]
        # isolated: nothing of the failed plugins is registered, the good one works
        assert "half-registered" not in schedules.names()
        assert reg.recipe("toy").domain == "toy2d"
        for name in ("broken-import", "raising", "duplicate", "typo"):
            assert not reg.plugins[name].ok
            assert not any(reg.plugins[name].provides.values())
    finally:
        reset_registry()


def test_broken_plugin_is_fatal_in_strict_mode(broken_site, monkeypatch):
    monkeypatch.syspath_prepend(str(broken_site))
    monkeypatch.setenv("DIFFCORE_STRICT_PLUGINS", "1")
    reset_registry()
    try:
        with pytest.raises(PluginError, match="broken-import"):
            get_registry()
        assert "toy-linear" not in schedules.names()  # nothing half-registered is left behind
    finally:
        monkeypatch.delenv("DIFFCORE_STRICT_PLUGINS")
        reset_registry()


def test_cli_plugins_reports_broken_and_strict_flag_fails(broken_site):
    proc = run_cli(["plugins"], site=broken_site)
    assert proc.returncode == 0, proc.stderr
    assert "toy  [ok]  brokenplugs 0.1" in proc.stdout
    assert "broken-import  [FAILED]" in proc.stdout and "not_a_real_dependency_xyz" in proc.stdout
    # (DIFFCORE_STRICT_PLUGINS=1 is tested in-process above; the flag sets it.)
    proc = run_cli(["--strict-plugins", "plugins"], site=broken_site)
    assert proc.returncode == 2
    # the first failing plugin stops the command (which one depends on discovery order)
    assert re.match(r"error: plugin '[\w-]+': failed (to load|in)", proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
