"""The example third-party plugin (examples/diffcore-points) and the plugin conformance kit
(diffcore/testing/).

- the example plugin passes the kit (in-process), and so do the three built-in plugins;
- the kit reports every fault of deliberately broken plugins, each with what to fix;
- the example plugin, "installed" as a distribution with its entry point (a fake dist-info on
  PYTHONPATH, as pip would leave it), appears in `diffcore plugins`, trains with
  `diffcore train --plugin points-mlp` and samples a scatter PNG with `diffcore sample`.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import run_cli

import diffcore
import diffcore.testing as dt
from diffcore import schedules

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "diffcore-points"
SRC = EXAMPLE / "src"

POINTS_OPTIONS = {"points": {"num": 256}}
IMAGE_OPTIONS = {"image": {"resolution": 8}}


@pytest.fixture
def points_module(monkeypatch):
    """diffcore_points importable from the example's source tree (no pip install needed)."""
    monkeypatch.syspath_prepend(str(SRC))
    return importlib.import_module("diffcore_points.plugin")


@pytest.fixture(scope="module")
def points_site(tmp_path_factory) -> Path:
    """What `pip install examples/diffcore-points` leaves in site-packages: the package, and a
    dist-info (named as pip names it: the project name with "_") whose METADATA and
    entry_points.txt come from the example's pyproject.toml."""
    import tomllib

    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site = tmp_path_factory.mktemp("points-site")
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    eps = "".join(f"{k} = {v}\n" for k, v in project["entry-points"]["diffcore"].items())
    (info / "entry_points.txt").write_text(f"[diffcore]\n{eps}")
    shutil.copytree(SRC / "diffcore_points", site / "diffcore_points", ignore=shutil.ignore_patterns("__pycache__"))
    return site


# --------------------------------------------------------------------- the example plugin
def test_example_plugin_conforms(points_module):
    report = dt.check_plugin(
        points_module, name="points", domain_options={**POINTS_OPTIONS, **IMAGE_OPTIONS},
        backbone_options={"image-mlp": {"width": 32, "depth": 1, "time_dim": 16}}, evaluate=True,
        edit_inputs={"points": ["0.5,", ",-0.25"]}, edit_options={"points": {"keep": "given"}},
    )
    assert report.ok and not report.warnings, str(report)
    checked = " | ".join(report.passed)
    # every extension point was exercised: its domain, both backbones (image-mlp against the
    # built-in image domain of another plugin), its sampler, its schedule and its recipes
    for what in ("domain 'points'", "backbone 'points-mlp'", "backbone 'image-mlp'", "sampler 'dpm-solver++2s'",
                 "schedule 'sigmoid'", "recipe 'points-mlp'", "recipe 'image-mlp'", "write_edits writes files"):
        assert what in checked, (what, report.skipped)


def test_example_plugin_own_tests(points_module, monkeypatch):
    """The plugin package's own test file (what a plugin author writes) passes (its
    check_plugin call is the one above, with more assertions)."""
    monkeypatch.syspath_prepend(str(EXAMPLE / "tests"))
    own = importlib.import_module("test_points")
    tests = [n for n in dir(own) if n.startswith("test_")]
    assert "test_points_plugin_conforms" in tests
    for name in tests:
        if name != "test_points_plugin_conforms":
            getattr(own, name)()


def test_example_config_file_is_the_recipe_defaults(points_module):
    """configs/points-mlp.yaml lists every option at the recipe's defaults."""
    from diffcore import config
    from diffcore.registry import registered_plugin

    with registered_plugin(points_module, "points-test"):
        from_recipe = config.resolve(plugin="points-mlp").config
        from_file = config.resolve(config_file=EXAMPLE / "configs" / "points-mlp.yaml").config
    assert from_file == from_recipe
    text = (EXAMPLE / "configs" / "points-mlp.yaml").read_text()
    for section in ("diffusion", "training", "sampling", "data", "backbone"):  # every key, each with a comment
        for key in getattr(from_recipe, section) if section in ("data", "backbone") else type(getattr(from_recipe, section)).model_fields:
            line = next((ln for ln in text.splitlines() if ln.strip().startswith(f"{key}:")), "")
            assert "#" in line, (section, key)


def test_sigmoid_schedule_matches_chen_2023(points_module):
    """alpha_bar = (v(1) - v(t)) / (v(1) - v(0)), v(t) = sigmoid((start + t (end - start)) / tau)
    (Chen 2023, Algorithm 1), against a direct evaluation; and sigma^2 = 1 - alpha_bar."""
    from diffcore_points.schedule import SigmoidSchedule

    s = SigmoidSchedule(start=-3, end=3, tau=0.7)
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    v = lambda u: torch.sigmoid((-3 + u * 6) / 0.7)  # noqa: E731
    ab = (v(torch.tensor(1.0, dtype=torch.float64)) - v(t)) / (v(torch.tensor(1.0, dtype=torch.float64)) - v(torch.tensor(0.0, dtype=torch.float64)))
    torch.testing.assert_close(s.alpha(t) ** 2, ab, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s.sigma(t) ** 2, 1 - ab, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="start < end"):
        SigmoidSchedule(start=1, end=0)


def test_dpm_solver_2s_is_second_order(points_module):
    """DPM-Solver++(2S) on the exact denoiser of a Gaussian mixture: doubling the steps (16 ->
    32) divides the median per-point distance to the 400-step solution of the same ODE by about
    4 (2nd order), where DDIM (1st order) divides it by about 2."""
    from diffcore_points.sampler import sample_dpm_solver_2s

    gm = dt.GaussianMixture.default()
    s = schedules.get("vp")
    model = gm.predictor(s, "eps")
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    diffcore.sampling.register("test-dpm2s", sample_dpm_solver_2s, replace=True)

    def errors(sampler):
        ref = diffcore.generate(model, z, s, sampler=sampler, steps=400, spacing="logsnr")
        return [float((diffcore.generate(model, z, s, sampler=sampler, steps=n, spacing="logsnr") - ref).norm(dim=1).median()) for n in (16, 32)]

    try:
        dpm, ddim = errors("test-dpm2s"), errors("ddim")
    finally:
        diffcore.sampling.unregister("test-dpm2s")
    assert dpm[0] / dpm[1] > 3.0, dpm
    assert ddim[0] / ddim[1] < 2.6, ddim
    assert dpm[1] < ddim[1] / 5, (dpm, ddim)


# ------------------------------------------------------------------- broken plugins
BROKEN = textwrap.dedent(
    '''
    import torch
    from pydantic import BaseModel, Field
    from torch import nn

    import diffcore
    from diffcore import hookimpl


    class LooseOptions(BaseModel):          # FAULT: a plain BaseModel accepts unknown keys
        num: int = 12


    class BadDefaultOptions(diffcore.Options):
        width: int = Field(0, ge=1, description="FAULT: the default breaks its own constraint")


    class SetsDomain(diffcore.Domain):
        """Variable-size sets of 2-D points, padded by collate()."""
        name = "broken-sets"
        Options = LooseOptions

        def setup(self):
            g = torch.Generator().manual_seed(0)
            self.items = [torch.randn(2 + i % 3, 2, generator=g) for i in range(self.options.num)]

        def train_dataset(self):
            return [{"x": x} for x in self.items]

        def collate(self, items):
            n = max(len(it["x"]) for it in items)
            x, mask = torch.zeros(len(items), n, 2), torch.zeros(len(items), n, 1)
            for i, it in enumerate(items):
                x[i, : len(it["x"])] = it["x"]
                mask[i, : len(it["x"])] = 1
            return {"x": x, "mask": mask}

        def noise(self, like, batch, generator=None):
            return torch.randn(like.shape, dtype=like.dtype)   # FAULT: ignores mask and generator

        def state_dict(self):
            return {"scale": torch.tensor(2.0)}               # FAULT: a tensor is not JSON

        def sample_batches(self, num, batch_size, classes=None, options=None):
            for start in range(0, num, batch_size):
                b = min(batch_size, num - start)
                yield {"shape": (b, 4, 2), "mask": torch.ones(b, 4, 1)}

        def write_samples(self, results, out_dir):
            return []                                        # FAULT: writes nothing


    class WrongShape(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self, x, t, cond=None):                  # FAULT: [B, N, 1], not x's shape
            return self.lin(torch.cat([x, t[:, None, None].expand(*x.shape[:2], 1)], -1))


    class NoTime(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x, t, cond=None):                  # FAULT: ignores t
            return self.lin(x)


    def broken_sampler(den, x, ts, *, generator=None, callback=None, noise_fn=None):
        x0, _ = den(x, ts[0])                                # FAULT: one jump to x0_hat, and
        return x0 + 1e-3 * torch.randn_like(x)               # noise from the global RNG, no callback


    class Backwards(diffcore.schedules.Schedule):         # FAULT: noise shrinks with t, float32
        name = "backwards"
        t_min, t_max = 0.01, 0.99

        def log_alpha(self, t):
            return torch.log(torch.as_tensor(t, dtype=torch.float32))

        def sigma(self, t):
            return 1.0 - torch.as_tensor(t, dtype=torch.float32)


    @hookimpl
    def diffcore_register_domains(register):
        register(SetsDomain)


    @hookimpl
    def diffcore_register_backbones(register):
        register(diffcore.BackboneSpec(name="wrong-shape", domain="broken-sets", build=lambda o, d: WrongShape()))
        register(diffcore.BackboneSpec(name="no-time", domain="broken-sets", build=lambda o, d: NoTime(), Options=BadDefaultOptions))


    @hookimpl
    def diffcore_register_recipes(register):
        register(diffcore.Recipe(name="broken-a", domain="broken-sets", backbone="nope"))
        register(diffcore.Recipe(name="broken-b", domain="broken-sets", backbone="no-time", defaults={"training": {"max_stepz": 3}}))


    @hookimpl
    def diffcore_register_samplers(register):
        register("broken-sampler", broken_sampler)
        register("ddim", broken_sampler)                     # FAULT: a built-in's name


    @hookimpl
    def diffcore_register_schedules(register):
        register("backwards", Backwards)
    '''
)

# Faults of the hook module itself.
BROKEN_HOOKS = textwrap.dedent(
    '''
    from diffcore import hookimpl


    @hookimpl
    def diffcore_register_domain(register):                 # FAULT: misspelt hook name
        pass


    def diffcore_register_recipes(register):                # FAULT: not marked with @hookimpl
        pass
    '''
)


@pytest.fixture
def broken_module(tmp_path, monkeypatch):
    def load(name: str, source: str):
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    return load


def _has(report, *fragments: str) -> bool:
    return any(all(f in p for f in fragments) for p in report.problems)


def test_kit_reports_every_fault_of_a_broken_plugin(broken_module):
    mod = broken_module("broken_plug_kit", BROKEN)
    report = dt.check_plugin(mod, name="broken", raise_on_failure=False)
    expected = {
        "options accept unknown keys": ("domain 'broken-sets' Options", "accepts unknown keys", "extra='forbid'"),
        "default breaks its constraint": ("backbone 'no-time' Options", "default does not pass", "width"),
        "noise nonzero at padding": ("domain 'broken-sets'", "not zero at padding", "batch['mask']"),
        "noise ignores its generator": ("domain 'broken-sets'", "ignores its `generator`"),
        "state not JSON": ("domain 'broken-sets'", "state_dict() is not JSON-serialisable"),
        "writer writes nothing": ("domain 'broken-sets'", "write_samples() returned []"),
        "wrong output shape": ("backbone 'wrong-shape'", "returned (4, 4, 1) for x_t of shape (4, 4, 2)"),
        "output ignores t": ("backbone 'no-time'", "does not depend on t", "TimeEmbedding"),
        "sampler misses the target": ("sampler 'broken-sampler'", "does not reproduce the target"),
        "sampler uses the global RNG": ("sampler 'broken-sampler'", "same generator seed differ"),
        "sampler skips callback": ("sampler 'broken-sampler'", "callback"),
        "sampler name taken": ("failed in diffcore_register_samplers", "sampler 'ddim' is already registered by diffcore"),
        "schedule float32": ("schedule 'backwards'", "alpha(t) is torch.float32", "float64"),
        "schedule log-SNR rises": ("schedule 'backwards'", "log-SNR is not decreasing"),
        "recipe names a missing backbone": ("recipe 'broken-a'", "backbone 'nope'"),
        "recipe defaults invalid": ("recipe 'broken-b'", "unknown key 'training.max_stepz'", "did you mean 'max_steps'"),
    }
    missing = [what for what, frags in expected.items() if not _has(report, *frags)]
    assert not missing, f"not reported: {missing}\n{report}"
    # every problem says what to fix
    assert all(". Fix: " in p for p in report.problems if "raised" not in p), report.problems
    # one AssertionError lists them all
    with pytest.raises(AssertionError) as info:
        dt.check_plugin(mod, name="broken")
    assert isinstance(info.value, dt.ConformanceError)
    assert info.value.report.problems == report.problems
    assert "noise() is not zero at padding" in str(info.value) and "does not depend on t" in str(info.value)


def test_kit_reports_hook_faults(broken_module):
    mod = broken_module("broken_hooks_kit", BROKEN_HOOKS)
    report = dt.check_plugin(mod, name="hooks", raise_on_failure=False)
    assert _has(report, "unknown hook(s) diffcore_register_domain", "diffcore_register_domains"), report
    assert _has(report, "diffcore_register_recipes is not marked with @diffcore.hookimpl"), report


def test_kit_pieces_accept_good_and_refuse_bad(broken_module):
    """The single checks: the built-in samplers/schedules pass; the broken ones fail."""
    mod = broken_module("broken_plug_pieces", BROKEN)
    for name in ("ddim", "heun", "ddpm"):
        dt.check_sampler(diffcore.sampling.get(name), name, steps=100 if name == "ddpm" else 50)
    for name in ("linear", "cosine", "vp", "ve", "flow"):
        dt.check_schedule(schedules.get(name), name)
    with pytest.raises(AssertionError, match="does not reproduce the target"):
        dt.check_sampler(mod.broken_sampler, "broken")
    rep = dt.check_schedule(mod.Backwards, raise_on_failure=False)
    assert not rep.ok and _has(rep, "log-SNR is not decreasing")
    rep = dt.check_options_model(mod.LooseOptions, raise_on_failure=False)
    assert _has(rep, "accepts unknown keys")


# ------------------------------------------------------------- the built-in plugins
BUILTINS = {
    "image-unet": ("diffcore_image.plugin", IMAGE_OPTIONS,
                   {"unet": {"base_channels": 8, "num_res_blocks": 1, "attention_resolutions": [4]}}),
    "audio-spectrogram": ("diffcore_audio.plugin",
                          {"audio": {"sample_rate": 8000, "clip_seconds": 0.25, "n_fft": 256, "hop_length": 64, "n_mels": 16,
                                     "notes": ["A3"], "percussion": ["kick"], "per_class": 2, "val_per_class": 1,
                                     "griffin_lim_iters": 2, "inverse_mel_iters": 2}},
                          {"spec-unet1d": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_levels": []}}),
    "molecule-coords": ("diffcore_molecule.plugin",
                        {"molecule": {"max_molecules": 4, "conformers": 1, "mmff": False, "val_fraction": 0.25, "test_set": False},
                         "molecule-torsion": {"max_molecules": 4, "conformers": 1, "mmff": False, "val_fraction": 0.25,
                                              "test_set": False, "sampling_pool": 1}},  # the pool and the test set: test_molecule_*.py
                        {"egnn": {"hidden": 16, "layers": 2}, "torsion-net": {"hidden": 16, "layers": 1}}),
}


@pytest.mark.slow
@pytest.mark.parametrize("plugin", sorted(BUILTINS))
def test_builtin_plugins_conform(plugin):
    module, data, backbone = BUILTINS[plugin]
    report = dt.check_plugin(importlib.import_module(module), name=plugin, domain_options=data, backbone_options=backbone)
    assert report.ok, str(report)


# ------------------------------------------------------- installed, from the command line
@pytest.mark.slow
def test_points_plugin_installed_trains_and_samples(points_site, points_module, tmp_path):
    proc = run_cli(["plugins", "--json"], site=points_site)
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    points = plugins["points"]
    assert (points["status"], points["package"], points["version"]) == ("ok", "diffcore-points", "0.1.0")
    assert points["provides"] == {
        "recipes": ["image-mlp", "points-mlp"], "domains": ["points"], "backbones": ["image-mlp", "points-mlp"], "autoencoders": [],
        "samplers": ["dpm-solver++2s"], "schedules": ["sigmoid"],
    }
    assert all(p["status"] == "ok" for p in plugins.values()), plugins  # it takes no other plugin down

    run = tmp_path / "run"
    proc = run_cli(["train", "--plugin", "points-mlp", "--out", str(run), "--max-steps", "30", "--set", "data.num=512",
                    "--set", "training.preview_num=200", "--set", "data.dataset=8-gaussians", "--no-progress"],
                   site=points_site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (run / "ema.safetensors").is_file() and (run / "previews" / "step-0000030" / "samples.png").is_file()
    state = json.loads((run / "domain_state.json").read_text())
    assert set(state) == {"mean", "scale"}

    out = tmp_path / "samples"
    proc = run_cli(["sample", "--run", str(run), "--num", "300", "--out", str(out), "--class", "NE", "--marker-size", "2"],
                   site=points_site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    png = out / "samples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "samples.csv").read_text().splitlines()
    assert rows[0] == "x,y,label" and len(rows) == 301 and all(r.endswith(",NE") for r in rows[1:])

    # (in-process from here on: a subprocess costs seconds of imports)
    # a domain option it does not have is refused, with the list of its options
    from typer.testing import CliRunner

    from diffcore.cli import app
    from diffcore.registry import registered_plugin

    with registered_plugin(points_module, "points-test"):
        res = CliRunner().invoke(app, ["sample", "--run", str(run), "--out", str(tmp_path / "s2"), "--markersize", "2"])
        assert res.exit_code == 2 and "--marker-size" in res.output and "Traceback" not in res.output, res.output
        # evaluate: the energy distance and its floor
        res = CliRunner().invoke(app, ["evaluate", "--run", str(run), "--num", "200"])
        assert res.exit_code == 0, res.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["energy_distance"] > 0 and metrics["energy_distance_null"] > 0 and metrics["finite_fraction"] == 1.0


# ------------------------------------------------------------------ editing, from the command line
@pytest.mark.slow
def test_points_plugin_edits_from_the_command_line(points_module, tmp_path):
    """`diffcore edit` on a tiny run of the example plugin: the kept coordinate comes back
    exactly (to the CSV's 6 decimals), --class labels the outputs, the files and the
    before/after picture are written; bad inputs are one `error:` line and exit code 2.
    (In-process: the installed plugin's CLI is covered above.)"""
    from typer.testing import CliRunner

    from diffcore.cli import app
    from diffcore.registry import registered_plugin

    def cli(*args):
        return CliRunner().invoke(app, [str(a) for a in args])

    run, out = tmp_path / "run", tmp_path / "edits"
    points = tmp_path / "points.csv"
    points.write_text("x,y,label\n1.25,,E\n-0.5,0.75,W\n")  # --keep x: the y given for the second point is redrawn
    with registered_plugin(points_module, "points-test"):
        res = cli("train", "--plugin", "points-mlp", "--out", run, "--max-steps", 20, "--set", "data.num=256",
                  "--set", "training.preview_num=50", "--set", "data.dataset=8-gaussians", "--no-progress")
        assert res.exit_code == 0, res.output
        res = cli("edit", "--run", run, "--input", points, "--input", "0.125,", "--keep", "x", "--num", 3, "--class", "NE",
                  "--sampler", "ddpm", "--steps", 10, "--resample", 2, "--out", out)
        assert res.exit_code == 0, res.output
        assert {p.name for p in out.iterdir()} == {"samples.csv", "samples.png", "edit.png", "edit.json"}
        assert (out / "edit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        rows = (out / "samples.csv").read_text().splitlines()
        assert rows[0] == "x,y,label" and len(rows) == 1 + 3 * 3
        cells = [r.split(",") for r in rows[1:]]
        assert [c[0] for c in cells] == ["1.250000"] * 3 + ["-0.500000"] * 3 + ["0.125000"] * 3
        assert all(c[2] == "NE" for c in cells) and len({c[1] for c in cells}) == 9  # y generated, each its own
        assert json.loads((out / "edit.json").read_text())["resample"] == 2

        bad = {
            ("--input", tmp_path / "nope.csv"): f"--input {tmp_path / 'nope.csv'}: no such file",
            ("--input", "0.5,", "--keep", "z"): "--keep",
            ("--input", ",0.5", "--keep", "x"): "--input ,0.5 gives no x, which --keep x keeps",
            ("--input", "0.5,1", "--keep", "none"): "--mode inpaint needs a part to keep",
            ("--input", "0.5,", "--resample", 3): "cannot run one step at a time",  # the run's dpm-solver++2s
        }
        for args, message in bad.items():
            res = cli("edit", "--run", run, "--out", tmp_path / "bad", *args)
            assert res.exit_code == 2 and "error:" in res.output and message in res.output, (args, res.output)
            assert "Traceback" not in res.output, res.output
