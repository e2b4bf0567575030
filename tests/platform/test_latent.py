"""Latent diffusion end to end through the CLI on tiny settings (the embedded digits):
train-autoencoder -> train with latent.autoencoder -> sample -> evaluate; the scale factor;
the autoencoder hook; and each bad input as one error line."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from diffcore import AutoencoderSpec, hookimpl
from diffcore.cli import app
from diffcore.contract import KLAutoencoderOptions, build_kl_autoencoder
from diffcore.platform import autoencoder_run, registry, runs

AE_TINY = ["--max-steps", "120", "--batch-size", "32", "--set", "training.eval_num=128", "--set", "training.picture_num=8",
           "--no-progress"]
LD_TINY = ["--max-steps", "20", "--set", "training.batch_size=32", "--set", "training.preview_num=4", "--set", "sampling.steps=5",
           "--set", "training.checkpoint_every=0", "--set", "backbone.base_channels=16", "--no-progress"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def one_error(res, *parts: str) -> None:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    for p in parts:
        assert p in lines[0], lines[0]


@pytest.fixture(scope="module")
def ae(tmp_path_factory):
    out = tmp_path_factory.mktemp("ae") / "ae"
    res = invoke("train-autoencoder", "--plugin", "image-unet", "--out", str(out), *AE_TINY, "--set", "data.split_seed=0")
    assert res.exit_code == 0, res.output
    # the hint names the data options given, which the diffusion run must share
    assert f"next: diffcore train --plugin image-unet --set data.split_seed=0 --set latent.autoencoder={out}" in res.stdout
    return out


@pytest.fixture(scope="module")
def latent_run(ae, tmp_path_factory):
    run = tmp_path_factory.mktemp("ld") / "run"
    res = invoke("train", "--plugin", "image-unet", "--out", str(run), "--set", f"latent.autoencoder={ae}", *LD_TINY)
    assert res.exit_code == 0, res.output
    return run


def test_train_autoencoder_writes_its_run(ae):
    for name in ("autoencoder.safetensors", "config.yaml", "metrics.json", "autoencoder.json", "domain_state.json", "metrics.csv"):
        assert (ae / name).is_file(), name
    metrics = json.loads((ae / "metrics.json").read_text())
    assert metrics["finite"] and metrics["psnr"] > 19  # an untrained one: ~8 dB (test_untrained_autoencoder_fails_the_bar)
    meta = json.loads((ae / "autoencoder.json").read_text())
    assert meta["data_shape"] == [1, 16, 16] and meta["latent_shape"] == [4, 4, 4]
    assert (ae / "reconstructions" / "original" / "samples.png").is_file()
    assert (ae / "reconstructions" / "decoded" / "samples.png").is_file()


def test_untrained_autoencoder_fails_the_bar(tmp_path):
    res = autoencoder_run.resolve("image-unet", flags={"training": {"max_steps": 1, "eval_num": 64, "picture_num": 0}})
    from diffcore.platform import autoencoder_training

    assert autoencoder_training.train(res, tmp_path / "ae", progress=False)["psnr"] < 12


def test_latent_run_records_its_autoencoder_and_unit_scale(ae, latent_run):
    state = json.loads((latent_run / "domain_state.json").read_text())
    info = state["latent"]
    assert info["sha256"] == autoencoder_run.sha256(ae / "autoencoder.safetensors")
    assert info["latent_shape"] == [4, 4, 4] and info["data_shape"] == [1, 16, 16]
    assert state["domain"]["resolution"] == 16
    assert (latent_run / "previews" / "step-0000020" / "samples.png").is_file()  # decoded, written by the image writer
    run = runs.load_run(latent_run)
    assert run.domain.latent_shape == (4, 4, 4)
    x = torch.stack([item["x"] for item in _train_items(run, 256)])
    z = run.domain.encode(x)
    assert z.shape[1:] == (4, 4, 4)
    assert 0.85 < float(z.std()) < 1.15  # LDM's scale_factor: unit-variance latents


def _train_items(run, n):
    run.domain.setup()
    ds = run.domain.train_dataset()
    return [ds[i] for i in range(min(n, len(ds)))]


def test_sample_and_evaluate_decode_latents(latent_run, tmp_path):
    out = tmp_path / "samples"
    res = invoke("sample", "--run", str(latent_run), "--out", str(out), "--num", "6", "--steps", "4")
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("0000*.png"))) == 6 and (out / "samples.png").is_file()
    res = invoke("evaluate", "--run", str(latent_run), "--num", "40", "--steps", "4")
    assert res.exit_code == 0, res.output
    assert "frechet" in json.loads((latent_run / "metrics.json").read_text())  # computed on decoded samples
    import diffcore

    assert diffcore.load(latent_run).sample(2, steps=3).shape == (2, 1, 16, 16)  # the Python API decodes too


def test_sample_refuses_a_changed_autoencoder(ae, tmp_path):
    copy = tmp_path / "ae"
    shutil.copytree(ae, copy)
    run = tmp_path / "run"
    assert invoke("train", "--plugin", "image-unet", "--out", str(run), "--set", f"latent.autoencoder={copy}", *LD_TINY[:2],
                  "--set", "training.preview_num=0", "--no-progress").exit_code == 0
    state = runs.read_weights(copy / "autoencoder.safetensors")
    runs.save_weights({k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}, copy / "autoencoder.safetensors")
    one_error(invoke("sample", "--run", str(run), "--out", str(tmp_path / "s"), "--num", "2"), "has changed", str(copy))
    one_error(invoke("train", "--out", str(run), "--resume", "--max-steps", "30", "--no-progress"), "has changed", str(copy))


def test_bad_autoencoder_references_are_one_line(ae, latent_run, tmp_path):
    def train(*sets: str):
        return invoke("train", "--plugin", "image-unet", "--out", str(tmp_path / "r"), "--max-steps", "1", "--no-progress",
                      *[a for s in sets for a in ("--set", s)])

    one_error(train(f"latent.autoencoder={tmp_path / 'nope'}"), "no autoencoder run at", "nope")
    one_error(train(f"latent.autoencoder={latent_run}"), "is a diffusion run, not an autoencoder run")
    one_error(train("latent.autoencoder=image-kl"), "is a registered autoencoder, not a trained one")
    one_error(train(f"latent.autoencoder={ae}", "data.resolution=8"), "was trained on data of shape (1, 16, 16)", "(1, 8, 8)")
    one_error(train(f"latent.autoencoder={ae}", "backbone.channel_mult=[1,2,2,2]"), str(ae), "latent resolution (4)")
    one_error(invoke("sample", "--run", str(ae), "--num", "1"), "is an autoencoder run")
    png = next((ae / "reconstructions" / "original").glob("0*.png"))
    one_error(invoke("edit", "--run", str(latent_run), "--input", str(png), "--out", str(tmp_path / "e")), "does not support latent")
    one_error(invoke("train-autoencoder", "--plugin", "image-unet", "--out", str(ae)), "already holds a run")
    one_error(invoke("train-autoencoder", "--plugin", "image-unet", "--out", str(tmp_path / "a"), "--set", "data.resolution=18",
                     "--max-steps", "1"), "divisible by its downsampling factor")
    one_error(invoke("train-autoencoder", "--plugin", "image-unet", "--autoencoder", "spectrogram-kl", "--out", str(tmp_path / "b")),
              "is for domain 'audio', not 'image'")


def test_autoencoder_of_another_domain_is_refused(tmp_path):
    audio = tmp_path / "audio-ae"
    res = invoke("train-autoencoder", "--plugin", "audio-spectrogram", "--out", str(audio), "--max-steps", "2", "--no-progress",
                 "--set", "data.notes=[A3]", "--set", "data.percussion=[]", "--set", "data.per_class=2", "--set", "data.val_per_class=1",
                 "--set", "training.picture_num=0")
    assert res.exit_code == 0, res.output
    res = invoke("train", "--plugin", "image-unet", "--out", str(tmp_path / "r"), "--max-steps", "1", "--set", f"latent.autoencoder={audio}")
    one_error(res, "autoencoder of the 'audio' domain", "this run's domain is 'image'")


class ToyAutoencoders:
    @hookimpl
    def diffcore_register_autoencoders(self, register):
        register(AutoencoderSpec("toy-kl", "image", lambda o, d: build_kl_autoencoder(o, d.channels), Options=KLAutoencoderOptions))


class BadAutoencoders:
    @hookimpl
    def diffcore_register_autoencoders(self, register):
        register("not a spec")


def test_the_autoencoder_hook():
    reg = registry.get_registry()
    assert reg.autoencoders["image-kl"].domain == "image" and reg.autoencoders["spectrogram-kl"].domain == "audio"
    with registry.registered_plugin(ToyAutoencoders(), "toy-ae"), registry.registered_plugin(BadAutoencoders(), "bad-ae") as reg:
        assert reg.autoencoders["toy-kl"].domain == "image" and reg.plugins["toy-ae"].provides["autoencoders"] == ["toy-kl"]
        assert not reg.plugins["bad-ae"].ok and "expects an AutoencoderSpec" in reg.plugins["bad-ae"].status
        with pytest.raises(Exception, match="several autoencoders: image-kl, toy-kl"):
            autoencoder_run.resolve("image-unet", registry=reg)
        assert autoencoder_run.resolve("image-unet", flags={"name": "toy-kl"}, registry=reg).spec.name == "toy-kl"



def test_sharded_sampling_decodes_the_same_samples(latent_run, tmp_path):
    from conftest import run_cli

    common = ["sample", "--run", str(latent_run), "--num", "6", "--steps", "4", "--batch-size", "4", "--threads", "1"]
    one = run_cli([*common, "--out", str(tmp_path / "one")], timeout=300)
    two = run_cli([*common, "--out", str(tmp_path / "two"), "--devices", "2", "--accelerator", "cpu"], timeout=300)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert "(2 processes)" in two.stdout
    names = sorted(p.name for p in (tmp_path / "one").glob("0*.png"))
    assert len(names) == 6 and names == sorted(p.name for p in (tmp_path / "two").glob("0*.png"))
    assert all((tmp_path / "one" / n).read_bytes() == (tmp_path / "two" / n).read_bytes() for n in names)


def test_docs_list_every_autoencoder_training_key_and_latent_key():
    from pathlib import Path

    from diffcore.platform.config import LatentConfig

    doc = (Path(__file__).parents[2] / "docs" / "latent.md").read_text(encoding="utf-8")
    for name in autoencoder_run.AETrainingConfig.model_fields:
        assert f"`training.{name}`" in doc, name
    for name in LatentConfig.model_fields:
        assert f"`latent.{name}`" in doc, name


def test_a_latent_run_keeps_clip_x0_only_from_the_command_line():
    from pathlib import Path

    from diffcore.platform.config import resolve

    ae, root = "latent.autoencoder=runs/some-ae", Path(__file__).parents[2]  # resolve does not open the autoencoder run
    for cfg_file, plugin in (("configs/image-unet.yaml", None), ("configs/audio-spectrogram.yaml", None), (None, "image-unet")):
        path = root / cfg_file if cfg_file else None
        assert resolve(plugin, path, [ae]).config.sampling.clip_x0 is None, cfg_file  # the data's clamp, not the latents'
        assert resolve(plugin, path, [ae, "sampling.clip_x0=2.5"]).config.sampling.clip_x0 == 2.5
        assert resolve(plugin, path, [ae], {"sampling": {"clip_x0": 1.5}}).config.sampling.clip_x0 == 1.5
        assert resolve(plugin, path).config.sampling.clip_x0 == 1.0  # pixel diffusion keeps the recipe's and the file's


def test_memory_checks_count_decoded_samples_and_writing_decodes_batch_by_batch(tmp_path):
    from types import SimpleNamespace

    from diffcore.contract.errors import UserError
    from diffcore.platform import budget, latent

    big = {"shape": (1, 4, 4, 4), "data_shape": (1, 3, 100_000, 100_000)}  # 64 latent values, 3e10 decoded ones
    with pytest.raises(UserError, match="memory"):
        budget.checked_batches([big], 1000)
    seen = []

    class Writer(SimpleNamespace):
        def write_samples(self, results, out_dir, options=None):
            for x, batch in results:
                seen.append((ae.decoded, tuple(x.shape), batch["shape"]))
            return []

    class AE(torch.nn.Module):
        decoded = 0

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def decode(self, z):
            AE.decoded += 1
            return z.repeat(1, 2, 1, 1)

    ae = AE()
    inner = Writer(options=None, workdir=None, name="toy", Options=None, SampleOptions=None)
    view = latent.LatentDomain(inner, ae, {"scale_factor": 1.0, "latent_shape": [1, 2, 2]})
    results = [(torch.zeros(2, 1, 2, 2), {"shape": (2, 1, 2, 2), "data_shape": (2, 2, 2, 2)}) for _ in range(3)]
    view.write_samples(results, tmp_path)
    assert [s[0] for s in seen] == [1, 2, 3] and seen[0][1:] == ((2, 2, 2, 2), (2, 2, 2, 2))
    assert latent.inner_of(view) is inner and latent.inner_of(inner) is inner  # what make_loader's workers collate with


def test_run_to_moves_the_autoencoder_too(latent_run):
    run = runs.load_run(latent_run, device="cpu").to("meta")
    assert run.device.type == "meta" and next(run.net.parameters()).device.type == "meta"
    assert next(run.domain.autoencoder.parameters()).device.type == "meta"


def test_resume_refuses_another_autoencoder_or_scale_factor(ae, latent_run, tmp_path):
    run, other = tmp_path / "run", tmp_path / "other-ae"
    shutil.copytree(latent_run, run)
    shutil.copytree(ae, other)
    scale = json.loads((run / "domain_state.json").read_text())["latent"]["scale_factor"]
    resume = ("train", "--out", str(run), "--resume", "--max-steps", "30", "--no-progress")
    one_error(invoke(*resume, "--set", f"latent.autoencoder={other}"), "latent.autoencoder", str(ae.resolve()), str(other))
    one_error(invoke(*resume, "--set", "latent.scale_factor=2.5"), "latent.scale_factor", str(scale), "2.5")


def test_bad_autoencoder_and_run_files_are_one_line(ae, latent_run, tmp_path):
    bad_ae = tmp_path / "ae"
    shutil.copytree(ae, bad_ae)

    def train():
        return invoke("train", "--plugin", "image-unet", "--out", str(tmp_path / "r"), "--max-steps", "1", "--no-progress",
                      "--set", f"latent.autoencoder={bad_ae}")

    (bad_ae / "autoencoder.json").write_text("[]")
    one_error(train(), "autoencoder.json holds a JSON list, not an object")
    (bad_ae / "autoencoder.json").write_text("{not json")
    one_error(train(), "a JSON file cannot be read")
    (bad_ae / "autoencoder.json").write_text('{"data_shape": [1, 16, 16]}')
    one_error(train(), "no latent_shape")
    run = tmp_path / "run"
    shutil.copytree(latent_run, run)
    sample = ("sample", "--run", str(run), "--out", str(tmp_path / "s"), "--num", "1", "--steps", "2")
    state = json.loads((run / "domain_state.json").read_text())
    del state["latent"]["latent_shape"]
    (run / "domain_state.json").write_text(json.dumps(state))
    one_error(invoke(*sample), "latent section has no latent_shape")
    (run / "domain_state.json").write_text("[]")
    one_error(invoke(*sample), "domain_state.json holds a JSON list, not an object")
    (run / "domain_state.json").unlink()
    one_error(invoke(*sample), "domain_state.json is missing", "latent")


def test_train_autoencoder_refuses_an_absent_mps_device():
    from diffcore.contract.errors import UserError
    from diffcore.platform import autoencoder_training

    if torch.backends.mps.is_available():
        pytest.skip("this machine has an MPS device")
    with pytest.raises(UserError, match="mps was asked for but no Apple MPS device"):
        autoencoder_training._device("mps")
