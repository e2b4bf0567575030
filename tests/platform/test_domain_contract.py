"""The Domain methods whose signature grew: ``write_samples(results, out_dir, options)`` gets the
sample command's options and ``evaluate(sample_fn, num, out_dir, batch_size)`` the sampling
batch size. A plugin of the old form still samples and evaluates, with one deprecation warning
that names its class and the new signature (diffcore.contract.legacy)."""

from __future__ import annotations

import csv
import json
import sys
import warnings

import pytest
import torch
from conftest import TINY, make_site, run_cli
from typer.testing import CliRunner

from diffcore.cli import app
from diffcore.contract import PluginDeprecationWarning, legacy
from toyplug.domain import OldFormToyDomain, ToyDomain, ToySampleOptions


def _results(domain, num=6, batch_size=4):
    return [(torch.zeros(b["shape"]), b) for b in domain.sample_batches(num, batch_size)]


def _recorded(fn):
    """``fn()`` and the PluginDeprecationWarnings it emitted."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = fn()
    return out, [w for w in seen if issubclass(w.category, PluginDeprecationWarning)]


def test_old_forms_are_called_in_the_old_form_with_one_warning_each(tmp_path):
    class OldToy(OldFormToyDomain):  # a class of its own: the signatures are read once per class
        pass

    d = OldToy()
    d.setup()
    paths, seen = _recorded(lambda: legacy.write_samples(d, _results(d), tmp_path / "a", ToySampleOptions(scale=2.0)))
    assert [p.name for p in paths] == ["samples.csv"]
    assert len(seen) == 1 and issubclass(seen[0].category, DeprecationWarning)
    text = str(seen[0].message)
    assert "OldToy.write_samples(results, out_dir)" in text and "define write_samples(self, results, out_dir, options)" in text
    assert seen[0].filename == sys.modules[OldFormToyDomain.__module__].__file__  # the plugin's own definition
    _, again = _recorded(lambda: legacy.write_samples(d, _results(d), tmp_path / "b"))
    assert again == []  # once per function, not per call

    sizes = []

    def sample_fn(b):
        sizes.append(b["shape"][0])
        return torch.zeros(b["shape"])

    metrics, seen = _recorded(lambda: legacy.evaluate(d, sample_fn, 100, tmp_path, 7))
    assert set(metrics) == {"mean_dist", "class_accuracy", "finite"}
    assert len(seen) == 1 and "evaluate(self, sample_fn, num, out_dir, batch_size)" in str(seen[0].message)
    assert max(sizes) == 64  # the old form chooses its own batch


def test_new_forms_receive_the_options_and_the_batch_size(tmp_path):
    d = ToyDomain()
    d.setup()
    paths, seen = _recorded(lambda: legacy.write_samples(d, _results(d), tmp_path, ToySampleOptions(scale=2.0, tag=["x"])))
    assert [p.name for p in paths] == ["samples-x.csv"] and seen == []
    with open(paths[0]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(float(r["x"]) == 0.0 for r in rows)
    sizes = []

    def sample_fn(b):
        sizes.append(b["shape"][0])
        return torch.zeros(b["shape"])

    _, seen = _recorded(lambda: legacy.evaluate(d, sample_fn, 30, tmp_path, 7))
    assert seen == [] and sizes == [7, 7, 7, 7, 2]


def test_the_cli_passes_sample_options_and_the_evaluate_batch_size(toy_plugin, tmp_path, monkeypatch):
    run = tmp_path / "run"
    invoke = CliRunner().invoke
    assert invoke(app, ["train", "--plugin", "toy", "--out", str(run), *TINY]).exit_code == 0
    got = []

    def write_samples(self, results, out_dir, options):
        got.append(options)
        return [out_dir]

    monkeypatch.setattr(ToyDomain, "write_samples", write_samples)
    res = invoke(app, ["sample", "--run", str(run), "--num", "3", "--tag", "a", "--scale", "3", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert got == [ToySampleOptions(scale=3.0, tag=["a"])]

    seen = []
    original = ToyDomain.evaluate

    def evaluate(self, sample_fn, num, out_dir, batch_size):
        seen.append(batch_size)
        return original(self, sample_fn, num, out_dir, batch_size)

    monkeypatch.setattr(ToyDomain, "evaluate", evaluate)
    assert invoke(app, ["evaluate", "--run", str(run), "--num", "20", "--batch-size", "7"]).exit_code == 0
    assert invoke(app, ["evaluate", "--run", str(run), "--num", "20"]).exit_code == 0
    assert seen == [7, 64]  # --batch-size, else the run's sampling.batch_size


# the toy plugin with its domain written against the old signatures (same name, backbone, recipe)
OLD_PLUGIN = '''
from diffcore import hookimpl
from toyplug.domain import OldFormToyDomain
from toyplug.plugin import diffcore_register_backbones, diffcore_register_recipes  # noqa: F401


@hookimpl
def diffcore_register_domains(register):
    register(OldFormToyDomain)
'''


@pytest.mark.slow
def test_an_old_plugin_trains_samples_and_evaluates_and_the_cli_shows_one_warning(tmp_path):
    site = make_site(tmp_path / "site", "oldtoy", {"oldtoy": "oldtoy"}, modules={"oldtoy": OLD_PLUGIN})
    run = tmp_path / "run"
    proc = run_cli(["train", "--plugin", "toy", "--out", str(run), *TINY], site)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(["sample", "--run", str(run), "--num", "5", "--tag", "t", "--out", str(tmp_path / "s")], site)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s" / "samples.csv").is_file()  # the old writer, which never sees the options
    lines = [ln for ln in proc.stderr.splitlines() if "PluginDeprecationWarning" in ln]
    assert len(lines) == 1 and "OldFormToyDomain.write_samples(results, out_dir)" in lines[0] and "options)" in lines[0]
    proc = run_cli(["evaluate", "--run", str(run), "--num", "8"], site)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["finite"] == 1.0
    lines = [ln for ln in proc.stderr.splitlines() if "PluginDeprecationWarning" in ln]
    assert len(lines) == 1 and "OldFormToyDomain.evaluate(sample_fn, num, out_dir)" in lines[0]
