"""Run configs: layering, validation messages, YAML output, and the generated reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from typer.testing import CliRunner

from diffcore import config
from diffcore.platform import reference
from diffcore.cli import app
from diffcore.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def _yaml(tmp_path, text: str) -> Path:
    f = tmp_path / "layer.yaml"
    f.write_text(text)
    return f


def _error(**kw) -> str:
    with pytest.raises(UserError) as e:
        config.resolve(**kw)
    return str(e.value)


def test_layers_in_order(toy_plugin, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("training:\n  lr: 0.01\n  batch_size: 8\nbackbone:\n  hidden: 16\n")
    r = config.resolve("toy", f, ["training.lr=0.02", "data.spread=0.3"], {"training": {"batch_size": 4}})
    c = r.config
    assert c.training.lr == 0.02  # --set beats the file
    assert c.training.batch_size == 4  # flags beat the file
    assert c.training.max_steps == 20  # recipe default beats the core's 1000
    assert c.diffusion.schedule_options == {"num_steps": 100}  # recipe default
    assert c.training.weight_decay == 0.0  # core default
    assert r.backbone_options.hidden == 16 and r.data_options.spread == 0.3
    # plugin sections are written complete (defaults included)
    assert c.data == {"num": 256, "spread": 0.3, "seed": 0, "fail_setup": False}


def test_set_values_are_yaml_and_later_sets_win(toy_plugin):
    c = config.resolve("toy", sets=["sampling.clip_x0=1", "sampling.clip_x0=null", "training.grad_clip=0.5", "data.seed=3"]).config
    assert c.sampling.clip_x0 is None and c.training.grad_clip == 0.5 and c.data["seed"] == 3


def test_changing_schedule_drops_the_options_meant_for_another(toy_plugin):
    c = config.resolve("toy", sets=["diffusion.schedule=vp"]).config
    assert c.diffusion.schedule_options == {}
    c = config.resolve("toy", sets=["diffusion.schedule=vp", "diffusion.schedule_options.beta_max=10"]).config
    assert c.diffusion.schedule_options == {"beta_max": 10}


def test_unknown_keys_name_path_and_allowed(toy_plugin):
    msg = _error(plugin="toy", sets=["training.lrr=1e-3"])
    assert msg.startswith("unknown key 'training.lrr' (allowed: max_steps, batch_size, lr,")
    assert "did you mean 'lr'" in msg
    assert _error(plugin="toy", sets=["trainer.lr=1"]).startswith("unknown key 'trainer' (allowed: plugin, diffusion, training, sampling, data, backbone, latent)")
    assert _error(plugin="toy", sets=["data.spred=1"]) == "unknown key 'data.spred' (allowed: num, spread, seed, fail_setup) (did you mean 'spread'?)"
    assert _error(plugin="toy", sets=["backbone.width=3"]).startswith("unknown key 'backbone.width' (allowed: hidden, drop_prob)")


def test_bad_values_name_path_and_rule(toy_plugin):
    assert _error(plugin="toy", sets=["training.lr=-1"]) == "training.lr: Input should be greater than 0 (got -1)"
    assert _error(plugin="toy", sets=["data.spread=0"]) == "data.spread: Input should be greater than 0 (got 0)"
    msg = _error(plugin="toy", sets=["diffusion.prediction=noise"])
    assert msg.startswith("diffusion.prediction: Input should be 'eps', 'x0', 'v', 'score' or 'velocity'")
    msg = _error(plugin="toy", sets=["training.batch_size=0", "training.ema_decay=1.5"])
    assert msg.splitlines()[0] == "invalid configuration:"
    assert "training.batch_size: Input should be greater than or equal to 1 (got 0)" in msg
    assert "training.ema_decay: Input should be less than 1 (got 1.5)" in msg


def test_names_checked_against_registries(toy_plugin):
    msg = _error(plugin="toy", sets=["diffusion.schedule=foo"])
    assert msg.startswith("diffusion.schedule: unknown schedule 'foo'; valid: cosine, flow, linear,")
    assert "toy-linear" in msg  # the plugin's schedule counts
    assert _error(plugin="toy", sets=["sampling.sampler=ddin"]).endswith("(did you mean 'ddim'?)")
    assert _error(plugin="toy", sets=["diffusion.schedule_options.foo=1"]).startswith("diffusion.schedule_options: bad option for schedule 'linear'")
    msg = _error(plugin="toy", sets=["sampling.steps=500"])  # the sampler's own check, named by key
    assert msg.startswith("sampling.steps: steps=500 is more than") and "'linear'" in msg
    assert _error(plugin="nope").startswith("plugin: unknown plugin (recipe) 'nope'; valid:")


def test_bad_inputs_to_the_layers(toy_plugin, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  lr: [1, 2\n")
    assert "is not valid YAML at line 3" in _error(plugin="toy", config_file=bad)
    assert _error(plugin="toy", config_file=tmp_path / "missing.yaml").endswith("missing.yaml does not exist")
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n")
    assert "must hold a mapping" in _error(plugin="toy", config_file=lst)
    assert "expected KEY=VALUE" in _error(plugin="toy", sets=["training.lr"])
    assert "'training.lr' is a value, not a section" in _error(plugin="toy", sets=["training.lr=1", "training.lr.x=2"])
    other = tmp_path / "other.yaml"
    other.write_text("plugin: image-unet\n")
    assert "does not match plugin: 'image-unet'" in _error(plugin="toy", config_file=other)
    assert "no plugin given" in _error()


def test_resolved_yaml_round_trips(toy_plugin):
    r = config.resolve("toy", sets=["diffusion.schedule=vp", "training.lr=0.005"])
    text = config.to_yaml(r.config)
    assert list(yaml.safe_load(text)) == ["plugin", "diffusion", "training", "sampling", "data", "backbone", "latent"]
    again = config.resolve(base=yaml.safe_load(text))
    assert again.config == r.config


def test_cli_config_errors_are_one_line_without_traceback(toy_plugin, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--plugin", "toy", "--set", "training.lrr=1", "--out", str(out)])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: unknown key 'training.lrr' (allowed:")
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert not out.exists()  # nothing written before the config is valid


def test_cli_error_in_subprocess_prints_no_traceback(toy_site, tmp_path):
    proc = run_cli(["train", "--plugin", "toy", "--set", "training.lr=-1", "--out", str(tmp_path / "r")], site=toy_site)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: training.lr: Input should be greater than 0 (got -1)"
    assert "Traceback" not in proc.stdout + proc.stderr


def test_reference_docs_match_the_models():
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert doc == reference.render_reference(), "regenerate: python -m diffcore.platform.reference config > docs/configuration.md"
    for section in (config.DiffusionConfig, config.TrainingConfig, config.SamplingConfig):
        for name, field in section.model_fields.items():
            assert field.description, f"{section.__name__}.{name} has no description"


def test_sampler_reference_matches_the_table():
    from diffcore import sampling

    doc = (ROOT / "docs" / "samplers.md").read_text(encoding="utf-8")
    assert doc == reference.render_samplers(), "regenerate: python -m diffcore.platform.reference samplers > docs/samplers.md"
    for spec in sampling.specs():
        assert f"| `{spec.name}` |" in doc and spec.reference, spec.name
        for key, option in spec.options.items():
            assert option.description, f"{spec.name}.{key} has no description"


def test_old_configs_with_eta_still_resolve(toy_plugin, tmp_path):
    """Configs written before the sampler table had sampling.eta: it becomes DDIM's option where
    the sampler takes it, and is dropped where it never had an effect."""
    f = tmp_path / "old.yaml"
    f.write_text("plugin: toy\nsampling:\n  sampler: ddim\n  eta: 0.5\n")
    r = config.resolve(config_file=f)
    assert r.config.sampling.options == {"eta": 0.5} and r.plan.options == {"eta": 0.5}
    f.write_text("plugin: toy\nsampling:\n  sampler: heun\n  eta: 0.0\n")
    r = config.resolve(config_file=f)
    assert r.config.sampling.options == {} and r.plan.sampler == "heun"


def test_sampler_options_are_validated_and_dropped_with_another_sampler(toy_plugin, tmp_path):
    assert config.SamplingConfig().sampler == "auto"  # the default, which chooses options itself: one line says to name a sampler
    for recipe in ("image-unet", "audio-spectrogram"):  # `diffcore sample --steps 8` runs the recommended sampler
        assert config.resolve(plugin=recipe).config.sampling.sampler == "auto"
    assert "sampler 'auto' chooses the sampler" in _error(plugin="toy", sets=["sampling.sampler=auto", "sampling.options.eta=0.3"])
    assert _error(plugin="toy", sets=["sampling.options.eta=-1"]).startswith("sampling.options: option eta must be >= 0.0")
    assert "does not take option(s) etaa" in _error(plugin="toy", sets=["sampling.options.etaa=1"])
    r = config.resolve(plugin="toy", sets=["sampling.options.eta=0.3"])
    assert r.plan.options == {"eta": 0.3}
    # a layer that changes the sampler drops the options meant for the old one
    r = config.resolve(plugin="toy", config_file=_yaml(tmp_path, "sampling:\n  options: {eta: 0.3}\n"), sets=["sampling.sampler=pc"])
    assert r.plan.sampler == "pc" and r.plan.options == {"snr": 0.16, "corrector_steps": 1}
    plan = config.sampling_plan(r.config, key="cli", sampler="ddim", options={"eta": 1.0}, steps=7)
    assert (plan.sampler, plan.steps, dict(plan.options)) == ("ddim", 7, {"eta": 1.0})
    with pytest.raises(UserError, match="^--option: "):
        config.sampling_plan(r.config, key="cli", sampler="ddim", options={"eta": "x"})


def test_threads_default_and_setting(toy_plugin, monkeypatch):
    import torch

    from diffcore.platform import runs

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runs.default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert runs.default_threads() >= 1
    before = torch.get_num_threads()
    try:
        assert runs.use_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert "training.threads" in _error(plugin="toy", sets=["training.threads=0"])


def test_guidance_variant_and_its_options(toy_plugin, tmp_path):
    r = config.resolve(plugin="toy", sets=["sampling.guidance=2", "sampling.guidance_variant=apg", "sampling.guidance_options.eta=0.5"])
    assert (r.plan.guidance, r.plan.guidance_variant, dict(r.plan.guidance_options)) == (2.0, "apg", {"eta": 0.5, "r": 0.0, "beta": 0.0})
    assert r.plan.guidance_record() == {"scale": 2.0, "variant": "apg", "eta": 0.5, "r": 0.0, "beta": 0.0}
    assert config.resolve(plugin="toy", sets=["sampling.guidance=2"]).plan.guidance_record() == 2.0  # records keyed as before
    assert _error(plugin="toy", sets=["sampling.guidance_variant=apg", "sampling.guidance_options.phi=1"]).startswith(
        "sampling.guidance_options: guidance variant 'apg': unknown option(s) phi")
    assert "sampling.guidance_variant" in _error(plugin="toy", sets=["sampling.guidance_variant=nope"])
    # a layer that changes the variant drops the options meant for the old one
    r = config.resolve(plugin="toy", config_file=_yaml(tmp_path, "sampling:\n  guidance_variant: apg\n  guidance_options: {eta: 0.3}\n"),
                       sets=["sampling.guidance_variant=rescaled"])
    assert dict(r.plan.guidance_options) == {"phi": 0.7, "space": "x0"}
    plan = config.sampling_plan(r.config, key="cli", guidance_variant="interval", guidance_options={"lo": 0.1})
    assert (plan.guidance_variant, dict(plan.guidance_options)) == ("interval", {"lo": 0.1, "hi": 5.42})
    with pytest.raises(UserError, match="^--guidance-option: "):
        config.sampling_plan(r.config, key="cli", guidance_variant="interval", guidance_options={"lo": -1})
    with pytest.raises(UserError, match="^--guidance-variant: unknown guidance variant 'nope'"):
        config.sampling_plan(r.config, key="cli", guidance_variant="nope")
