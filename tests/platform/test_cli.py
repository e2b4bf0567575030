"""The command line end to end on the toy plugin: train -> sample -> evaluate, --resume,
reproducibility, help texts, and the schedule comparison."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY, run_cli
from safetensors.torch import load_file
from typer.testing import CliRunner

from diffcore.cli import app


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _steps(run: Path) -> int:
    return int(torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"])


def test_train_sample_evaluate_in_subprocesses(toy_site, tmp_path):
    run = tmp_path / "run"
    proc = run_cli(["train", "--plugin", "toy", "--out", str(run), *TINY, "--max-steps", "6", "--set", "training.checkpoint_every=3",
                    "--set", "training.preview_every=4"], site=toy_site)
    assert proc.returncode == 0, proc.stderr
    assert "trained 6 steps (1 process(es))" in proc.stdout
    for name in ("config.yaml", "domain_state.json", "ema.safetensors", "model.safetensors", "metrics.csv", "checkpoints/last.ckpt", "checkpoints/step=3.ckpt"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "previews").iterdir()) == ["step-0000004", "step-0000006"]  # every 4 steps, and at the end
    assert (run / "previews" / "step-0000006" / "samples.csv").is_file()
    assert json.loads((run / "domain_state.json").read_text())["scale"] > 0
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["loss"]]
    assert [int(r["step"]) for r in rows] == list(range(6))  # log_every=1 in the toy recipe
    assert _steps(run) == 6
    # EMA and raw weights are different tensors of the same backbone
    ema, raw = load_file(run / "ema.safetensors"), load_file(run / "model.safetensors")
    assert ema.keys() == raw.keys() and any(not torch.equal(ema[k], raw[k]) for k in ema)

    out = tmp_path / "samples"
    proc = run_cli(["sample", "--run", str(run), "--num", "6", "--class", "west", "--class", "1", "--steps", "5",
                    "--tag", "a", "--tag", "b", "--scale", "2", "--out", str(out)], site=toy_site)
    assert proc.returncode == 0, proc.stderr
    with open(out / "samples-a-b.csv") as f:
        labels = [r["label"] for r in csv.DictReader(f)]
    assert labels == ["west", "north"] * 3  # --class cycled over the samples

    (run / "metrics.json").write_text(json.dumps({"earlier": 1.5}))
    proc = run_cli(["evaluate", "--run", str(run), "--num", "16", "--sampler", "euler", "--steps", "4"], site=toy_site)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["records"][0]["metrics"] == {"earlier": 1.5}  # the old flat file kept as a record, not clobbered
    assert 0.0 <= metrics["class_accuracy"] <= 1.0 and metrics["finite"] == 1.0
    assert metrics["evaluated_with"]["sampler"] == "euler"
    assert json.loads(proc.stdout) == {k: v for k, v in metrics.items() if k != "records"}


@pytest.fixture
def tiny_run(toy_plugin, tmp_path):
    run = tmp_path / "run"
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY)
    assert res.exit_code == 0, res.output
    return run


def test_resume_continues_the_step_count(tiny_run):
    run = tiny_run
    assert _steps(run) == 4
    res = invoke("train", "--out", str(run), "--resume", "--max-steps", "7", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "trained 7 steps" in res.stdout
    assert _steps(run) == 7
    with open(run / "metrics.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["loss"]]
    assert steps == list(range(7))  # the first run's rows are kept, the resumed ones follow
    assert "max_steps: 7" in (run / "config.yaml").read_text()
    # nothing more to do: a clear refusal
    res = invoke("train", "--out", str(run), "--resume")
    assert res.exit_code == 2 and "already trained 7 steps" in res.stderr


def test_train_refuses_to_overwrite_a_run(tiny_run):
    before = {p: p.read_bytes() for p in tiny_run.rglob("*") if p.is_file()}
    res = invoke("train", "--plugin", "toy", "--out", str(tiny_run), *TINY)
    assert res.exit_code == 2
    assert "already holds a run; pass --resume" in res.stderr
    assert {p: p.read_bytes() for p in tiny_run.rglob("*") if p.is_file()} == before


def test_failed_setup_leaves_no_run_behind(toy_plugin, tmp_path):
    run = tmp_path / "run"
    res = invoke("train", "--plugin", "toy", "--out", str(run), "--set", "data.fail_setup=true", *TINY)
    assert res.exit_code == 2 and res.stderr == "error: toy data: asked to fail (data.fail_setup=true)\n"
    # the same --out can be used once the data is fixed
    assert invoke("train", "--plugin", "toy", "--out", str(run), *TINY).exit_code == 0


def test_same_seed_same_weights(toy_plugin, tmp_path):
    def weights(name, seed):
        res = invoke("train", "--plugin", "toy", "--out", str(tmp_path / name), "--seed", str(seed), *TINY)
        assert res.exit_code == 0, res.output
        return load_file(tmp_path / name / "ema.safetensors")

    a, b, c = weights("a", 1), weights("b", 1), weights("c", 2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_sample_options_and_refusals(tiny_run, tmp_path):
    out = tmp_path / "s1"
    assert invoke("sample", "--run", str(tiny_run), "--num", "4", "--out", str(out), "--seed", "3").exit_code == 0
    again = tmp_path / "s2"
    assert invoke("sample", "--run", str(tiny_run), "--num", "4", "--out", str(again), "--seed", "3").exit_code == 0
    assert (out / "samples.csv").read_text() == (again / "samples.csv").read_text()  # same seed, same samples
    res = invoke("sample", "--run", str(tiny_run), "--out", str(out))
    assert res.exit_code == 2 and "exists and is not an empty folder" in res.stderr
    res = invoke("sample", "--run", str(tiny_run), "--colour", "red")
    assert res.exit_code == 2 and res.stderr.startswith("error: unknown option --colour for the 'toy2d' domain; its options: --scale, --tag")
    res = invoke("sample", "--run", str(tiny_run), "--scale", "-1")
    assert res.exit_code == 2 and res.stderr == "error: --scale: Input should be greater than 0\n"
    res = invoke("sample", "--run", str(tiny_run), "--sampler", "nope")
    assert res.exit_code == 2 and res.stderr.startswith("error: --sampler: unknown sampler 'nope'; valid:")
    res = invoke("sample", "--run", str(tiny_run), "--class", "up")
    assert res.exit_code == 2 and "--class 'up': unknown label; valid: east, north, west, south" in res.stderr
    res = invoke("sample", "--run", str(tiny_run), "--domain-help")
    assert res.exit_code == 0 and "--scale" in res.stdout and "--tag" in res.stdout
    # default output: a fresh folder per call under RUN/samples
    assert invoke("sample", "--run", str(tiny_run), "--num", "2").exit_code == 0
    assert invoke("sample", "--run", str(tiny_run), "--num", "2").exit_code == 0
    assert len(list((tiny_run / "samples").iterdir())) == 2


def test_sampler_options_from_the_cli(tiny_run, tmp_path):
    """--option KEY=VALUE reaches the sampler (DDIM with eta = 1 is stochastic: another seed
    gives other samples, eta = 0 does not depend on the sampler's noise), --eta is its
    shorthand, and a wrong option is one clear line."""
    def csv_of(name, *args):
        res = invoke("sample", "--run", str(tiny_run), "--num", "4", "--steps", "5", "--sampler", "ddim", "--out", str(tmp_path / name), *args)
        assert res.exit_code == 0, res.output
        return (tmp_path / name / "samples.csv").read_text()

    stochastic = csv_of("a", "--option", "eta=1.0")
    assert stochastic == csv_of("b", "--eta", "1.0")
    assert stochastic != csv_of("c", "--option", "eta=0")
    res = invoke("sample", "--run", str(tiny_run), "--sampler", "ddim", "--option", "eta=-2")
    assert res.exit_code == 2 and res.stderr == "error: --option: option eta must be >= 0.0, got -2.0\n"
    res = invoke("sample", "--run", str(tiny_run), "--sampler", "heun", "--option", "eta=1")
    assert res.exit_code == 2 and "sampler 'heun' does not take option(s) eta; its options: none" in res.stderr
    res = invoke("sample", "--run", str(tiny_run), "--option", "eta")
    assert res.exit_code == 2 and "expected KEY=VALUE" in res.stderr
    assert "Traceback" not in res.output


def test_a_run_written_before_the_sampler_table_still_samples(tiny_run, tmp_path):
    """Old run directories have `sampling.eta` and no `sampling.options` in config.yaml: they
    load, sample exactly as a new run with the same eta, and resume."""
    cfg_file = tiny_run / "config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text())
    new = invoke("sample", "--run", str(tiny_run), "--num", "4", "--sampler", "ddim", "--eta", "1", "--out", str(tmp_path / "new"))
    assert new.exit_code == 0, new.output
    cfg["sampling"].pop("options")
    cfg["sampling"].update(sampler="ddim", eta=1.0)
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    old = invoke("sample", "--run", str(tiny_run), "--num", "4", "--out", str(tmp_path / "old"))
    assert old.exit_code == 0, old.output
    assert (tmp_path / "old" / "samples.csv").read_text() == (tmp_path / "new" / "samples.csv").read_text()
    res = invoke("train", "--out", str(tiny_run), "--resume", "--max-steps", "5", "--no-progress")
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(cfg_file.read_text())["sampling"]["options"] == {"eta": 1.0}


def test_spacing_times_and_notes_from_the_cli(tiny_run, tmp_path):
    res = invoke("sample", "--run", str(tiny_run), "--num", "2", "--sampler", "ddim", "--times", "0.9,0.5,0.1", "--out", str(tmp_path / "t"))
    assert res.exit_code == 0, res.output
    res = invoke("sample", "--run", str(tiny_run), "--num", "2", "--steps", "4", "--spacing", "karras", "--out", str(tmp_path / "k"))
    assert res.exit_code == 0, res.output
    res = invoke("sample", "--run", str(tiny_run), "--times", "0.5,0.9")
    assert res.exit_code == 2 and res.stderr.startswith("error: --times: must decrease strictly")
    res = invoke("sample", "--run", str(tiny_run), "--times", "0.5,x")
    assert res.exit_code == 2 and "expected comma-separated numbers" in res.stderr
    res = invoke("sample", "--run", str(tiny_run), "--spacing", "uniform")
    assert res.exit_code == 2 and res.stderr.startswith("error: --spacing: unknown spacing 'uniform'")
    res = invoke("sample", "--run", str(tiny_run), "--sampler", "langevin", "--steps", "5")
    assert res.exit_code == 2 and res.stderr.startswith("error: --steps: sampler 'langevin' needs at least 20 steps")
    res = invoke("sample", "--run", str(tiny_run), "--times", "0.9,0.1", "--steps", "3")
    assert res.exit_code == 2 and res.stderr.startswith("error: --times: give either times or steps/spacing")
    res = invoke("sample", "--run", str(tiny_run), "--sampler", "auto", "--spacing", "karras")
    assert res.exit_code == 2 and res.stderr.startswith("error: --sampler: sampler 'auto' chooses")
    res = invoke("sample", "--run", str(tiny_run), "--num", "2", "--sampler", "auto", "--steps", "6", "--out", str(tmp_path / "a"))
    assert res.exit_code == 0, res.output
    assert res.stderr.startswith("note: sampler 'auto' for ")


def test_every_sampler_runs_from_the_cli(tiny_run, tmp_path):
    from diffcore import sampling

    for i, name in enumerate(sampling.names()):
        steps = str(max(3, sampling.get(name).min_steps))
        res = invoke("sample", "--run", str(tiny_run), "--num", "2", "--steps", steps, "--sampler", name, "--guidance", "2", "--out", str(tmp_path / f"s{i}"))
        assert res.exit_code == 0, (name, res.output)
        with open(tmp_path / f"s{i}" / "samples.csv") as f:
            assert len(list(csv.DictReader(f))) == 2


def test_every_guidance_variant_runs_from_the_cli(tiny_run, tmp_path):
    for i, variant in enumerate(["cfg", "interval", "rescaled", "apg", "cfg++"]):
        scale = "0.5" if variant == "cfg++" else "2"
        res = invoke("sample", "--run", str(tiny_run), "--num", "2", "--steps", "3", "--guidance", scale,
                     "--guidance-variant", variant, "--out", str(tmp_path / f"g{i}"))
        assert res.exit_code == 0, (variant, res.output)
    res = invoke("sample", "--run", str(tiny_run), "--num", "2", "--guidance-variant", "apg", "--guidance-option", "eta=x",
                 "--out", str(tmp_path / "bad"))
    assert res.exit_code == 2 and res.stderr.startswith("error: --guidance-option: "), res.output


def test_help_is_complete():
    expected = {
        "train": ["--plugin", "--config", "--set", "--out", "--max-steps", "--seed", "--accelerator", "--devices", "--strategy", "--precision", "--resume"],
        "sample": ["--run", "--checkpoint", "--sampler", "--steps", "--num", "--batch-size", "--seed", "--guidance", "--guidance-variant", "--guidance-option", "--class", "--out", "--domain-help"],
        "evaluate": ["--run", "--num", "--sampler", "--steps", "--checkpoint", "--guidance-variant", "--guidance-option"],
        "edit": ["--run", "--input", "--mode", "--strength", "--resample", "--num", "--sampler", "--steps", "--class", "--guidance", "--out", "--domain-help"],
        "plugins": ["--json"],
        "schedule": ["NAME", "--steps", "--plot", "--alpha-bar", "--log-snr"],
    }
    top = invoke("--help")
    assert top.exit_code == 0
    for command, options in expected.items():
        assert command in top.stdout
        res = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
        assert res.exit_code == 0
        for opt in options:
            assert opt in res.stdout, (command, opt)


def test_schedule_table_and_plot(tmp_path):
    png = tmp_path / "s.png"
    res = invoke("schedule", "linear", "cosine", "--plot", str(png))
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {line.split()[0]: line.split() for line in res.stdout.splitlines()[2:4]}
    share = {name: float(cols[-1].rstrip("%")) for name, cols in rows.items()}
    # Nichol & Dhariwal's point: linear spends far more of its steps at almost pure noise.
    assert share["linear"] > 20 > 10 > share["cosine"]
    res = invoke("schedule", "nope")
    assert res.exit_code == 2 and "unknown schedule 'nope'" in res.stderr


def test_a_failing_preview_writer_keeps_the_trained_run(toy_plugin, tmp_path, monkeypatch):
    # e.g. the audio writer's soundfile missing its C library: the weights must survive
    import toyplug.domain

    def broken(self, results, out_dir):
        raise ModuleNotFoundError("No module named '_cffi_backend'")

    monkeypatch.setattr(toyplug.domain.ToyDomain, "write_samples", broken)
    run = tmp_path / "run"
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY)
    assert res.exit_code == 0, res.output
    assert "preview samples step-0000004 could not be written (ModuleNotFoundError: No module named '_cffi_backend')" in res.stderr
    assert (run / "ema.safetensors").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    monkeypatch.setenv("DIFFCORE_STRICT_PLUGINS", "1")  # plugin authors get the error itself
    res = invoke("train", "--plugin", "toy", "--out", str(tmp_path / "strict"), *TINY)
    assert res.exit_code != 0 and isinstance(res.exception, ModuleNotFoundError)


def test_cosine_learning_rate_reaches_its_final_fraction(toy_plugin, tmp_path):
    import math

    from diffcore.config import TrainingConfig
    from diffcore.training import lr_factor

    t = TrainingConfig(max_steps=1000, warmup_steps=100, lr_schedule="cosine", lr_final_fraction=0.1)
    assert lr_factor(0, t) == pytest.approx(0.01) and lr_factor(99, t) == 1.0 and lr_factor(100, t) == 1.0
    assert lr_factor(550, t) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(1000, t) == pytest.approx(0.1)
    assert lr_factor(500, TrainingConfig(max_steps=1000, warmup_steps=100)) == 1.0  # constant
    # through Lightning: the optimiser's learning rate after the last step of a run
    run = tmp_path / "run"
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--set", "training.lr=0.01",
                 "--set", "training.lr_schedule=cosine", "--set", "training.lr_final_fraction=0.25")
    assert res.exit_code == 0, res.output
    lr = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["optimizer_states"][0]["param_groups"][0]["lr"]
    assert lr == pytest.approx(0.01 * 0.25)


def test_resume_switching_to_cosine_continues_from_the_global_step(toy_plugin, tmp_path):
    # 4 constant steps (no scheduler state saved with warm-up 0), then resume to 8 with cosine:
    # the decay must follow the global step and end at its final fraction, not restart at 0
    run = tmp_path / "run"
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--set", "training.lr=0.01", "--set", "training.warmup_steps=0")
    assert res.exit_code == 0, res.output
    res = invoke("train", "--out", str(run), "--resume", "--max-steps", "8", "--no-progress",
                 "--set", "training.lr_schedule=cosine", "--set", "training.lr_final_fraction=0.5")
    assert res.exit_code == 0, res.output
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 8
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.01 * 0.5)


def test_sample_count_defaults_to_the_runs_sampling_num(toy_plugin, tmp_path):
    run = tmp_path / "run"
    assert invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--set", "sampling.num=7").exit_code == 0
    for args, n in (([], 7), (["--num", "3"], 3)):
        out = tmp_path / f"s{n}"
        res = invoke("sample", "--run", str(run), "--steps", "2", "--out", str(out), *args)
        assert res.exit_code == 0, res.output
        assert len((out / "samples.csv").read_text().strip().splitlines()) == 1 + n


def test_python_api_of_a_run(tiny_run):
    """runs.sample_fn / runs.evaluate take a plan, or the first API's keyword overrides."""
    from diffcore import runs
    from diffcore.platform.config import sampling_plan

    run = runs.load_run(tiny_run)
    batch = next(iter(run.domain.sample_batches(2, 2)))
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = runs.sample_fn(run, sampler="ddim", steps=3, eta=1.0, generator=gen())(batch)
    plan = sampling_plan(run.config, sampler="ddim", steps=3, options={"eta": 1.0})
    b = runs.sample_fn(run, plan, gen())(batch)
    assert a.shape == tuple(batch["shape"]) and torch.equal(a, b)
    with pytest.raises(TypeError, match="not both"):
        runs.sample_fn(run, plan, sampler="ddim")


def test_edit_refuses_a_domain_without_editing_and_bad_settings(tiny_run, tmp_path):
    res = invoke("edit", "--run", str(tiny_run), "--input", "0,1")
    assert res.exit_code == 2 and "does not support editing" in res.output and "Traceback" not in res.output
    from diffcore.contract.errors import UserError
    from diffcore.platform import editing

    for mode, strength, resample, msg in [("paint", None, 1, "--mode"), ("sdedit", 0.0, 1, "--strength"),
                                          ("sdedit", float("inf"), 1, "--strength"), ("invert", None, 3, "--resample")]:
        with pytest.raises(UserError, match=msg):
            editing.check_settings(mode, strength, resample)
    assert editing.check_settings("sdedit", None, 1) == 0.6
