"""What a run logs (diffcore/platform/training_logs.py): loss, lr, EMA decay, samples/s and the
seconds of each preview reach the configured logger, and each preview's picture goes through the
logger's own image API; a logger whose package is missing is refused naming the extra to install."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from diffcore.cli import app
from diffcore.platform import extensions, training_logs

# The image recipe at 8x8 with a tiny U-Net: 4 steps, previews after step 2 and at the end.
IMAGE_TINY = [
    "--set", "data.resolution=8", "--set", "backbone.base_channels=8", "--set", "backbone.num_res_blocks=1",
    "--set", "backbone.attention_resolutions=[4]", "--set", "training.batch_size=8", "--set", "training.preview_num=4",
    "--set", "training.checkpoint_every=0", "--set", "training.log_every=1", "--set", "training.preview_every=2",
    "--set", "sampling.steps=3", "--max-steps", "4", "--no-progress", "--accelerator", "cpu", "--threads", "1",
]


def test_tensorboard_receives_the_scalars_and_the_preview_pictures(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("diffcore_image")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--plugin", "image-unet", "--out", str(run), *IMAGE_TINY, "--set", "training.logger=tensorboard"])
    assert res.exit_code == 0, res.output
    assert "previews: 2 x 4 samples (3 sampling steps), " in res.stdout and "% of the run)" in res.stdout

    (events,) = (run / "tensorboard").glob("version_*")
    acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    steps = lambda tag: [e.step for e in acc.Scalars(tag)]  # noqa: E731
    for tag in ("loss", "lr", "samples_per_s", "ema_decay"):
        assert steps(tag) == [0, 1, 2, 3], tag
    assert all(e.value > 0 for e in acc.Scalars("samples_per_s"))
    assert [e.value for e in acc.Scalars("lr")][-1] == pytest.approx(1e-3 * 4 / 50, rel=1e-5)  # the recipe's warm-up: 50 steps
    assert acc.Scalars("ema_decay")[0].value == pytest.approx(2 / 11)  # (1 + step) / (10 + step) after the first step
    assert steps("preview_s") == [2, 4]  # the steps the previews are named after
    pictures = acc.Images(training_logs.PREVIEW_KEY)
    assert [p.step for p in pictures] == [2, 4]
    grid = Image.open(run / "previews" / "step-0000004" / "samples.png")  # the grid, not one of the samples
    assert (pictures[-1].width, pictures[-1].height) == grid.size

    with open(run / "metrics.csv") as f:  # the run's own metrics.csv has the same columns
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows if r["samples_per_s"]] == [0, 1, 2, 3]
    assert [int(r["step"]) for r in rows if r["preview_s"]] == [2, 4]


def _png(path, size, mode="RGB"):
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
    Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(path)
    return path


def test_the_picture_is_the_largest_one_the_writer_returned(tmp_path):
    paths = [_png(tmp_path / "0000_a.png", (8, 8)), _png(tmp_path / "grid.png", (40, 20)), tmp_path / "0000_a.wav", _png(tmp_path / "0001_b.png", (8, 8))]
    (tmp_path / "0000_a.wav").write_bytes(bytes(10_000))
    assert training_logs.picture(paths) == tmp_path / "grid.png"
    assert training_logs.picture([tmp_path / "mol.sdf"]) is None  # no picture: nothing is logged


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_pictures_reach_tensorboard_as_rgb_bytes(tmp_path, mode):
    path = _png(tmp_path / "p.png", (6, 4), mode)
    pixels = training_logs._pixels(path)
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, np.asarray(Image.open(path).convert("RGB")))


def test_each_logger_gets_the_picture_through_its_own_api(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

    path = _png(tmp_path / "samples.png", (6, 4))
    calls = []

    class Experiment:  # what TensorBoard's SummaryWriter and MLflow's client are asked
        def add_image(self, key, pixels, step, dataformats):
            calls.append(("tensorboard", key, pixels.shape, step, dataformats))

        def log_artifact(self, run_id, local, artifact_path):
            calls.append(("mlflow", run_id, local, artifact_path))

    # the loggers' packages need not be installed: their classes are Lightning's, the calls recorded
    monkeypatch.setattr(TensorBoardLogger, "experiment", property(lambda self: Experiment()))
    monkeypatch.setattr(MLFlowLogger, "experiment", property(lambda self: Experiment()))
    monkeypatch.setattr(MLFlowLogger, "run_id", property(lambda self: "run-1"))
    monkeypatch.setattr(WandbLogger, "log_image", lambda self, key, images, step: calls.append(("wandb", key, images, step)))
    for cls in (TensorBoardLogger, WandbLogger, MLFlowLogger):
        assert training_logs.log_picture(cls.__new__(cls), "preview", path, 7)
    assert not training_logs.log_picture(CSVLogger(tmp_path), "preview", path, 7)  # no image API: skipped
    assert calls == [
        ("tensorboard", "preview", (4, 6, 3), 7, "HWC"),
        ("wandb", "preview", [str(path)], 7),
        ("mlflow", "run-1", str(path), "preview/step-0000007"),
    ]


@pytest.mark.parametrize("name", sorted(n for n, short in extensions.LOGGERS.items() if short.packages))
def test_a_logger_whose_package_is_missing_names_the_extra(toy_plugin, tmp_path, monkeypatch, name):
    monkeypatch.setattr(extensions, "_installed", lambda module: module.split(".")[0] not in extensions.LOGGERS[name].packages)
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--plugin", "toy", "--out", str(run), "--no-progress", "--set", f"training.logger={name}"])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith(f"error: training.logger.class: '{name}' needs the {name} package, which is not installed: "
                                 f'pip install "diffcore[{name}]" (or pip install {name}')
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not run.exists()


def test_wandb_in_offline_mode_receives_the_run_and_its_preview_pictures(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    pytest.importorskip("diffcore_image")
    monkeypatch.setenv("WANDB_MODE", "offline")  # nothing leaves the machine
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--plugin", "image-unet", "--out", str(run), *IMAGE_TINY, "--set", "training.logger=wandb"])
    assert res.exit_code == 0, res.output
    (offline,) = (run / "wandb").glob("offline-run-*")  # under the run directory, as the other loggers
    assert len(list(offline.glob("run-*.wandb"))) == 1
    pictures = sorted((offline / "files" / "media" / "images").glob(f"{training_logs.PREVIEW_KEY}_*.png"))
    assert len(pictures) == 2  # one per preview (steps 2 and 4)
    grid = Image.open(run / "previews" / "step-0000004" / "samples.png")
    assert {Image.open(p).size for p in pictures} == {grid.size}
