"""training.callbacks and training.logger: Lightning callbacks and loggers named in the config
(diffcore/platform/extensions.py) run in a real `diffcore train`, survive --resume, leave the
run's metrics.csv as it is, and every bad entry is one `error:` line naming its key, before
anything is written."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import yaml
from conftest import TINY
from lightning.pytorch.callbacks import Callback
from typer.testing import CliRunner

from diffcore.cli import app

THREADS = ["--threads", "1"]
LR_MONITOR = "lightning.pytorch.callbacks.LearningRateMonitor"


class MarkEnd(Callback):
    """Writes the step training ended at to ``path`` (named by the configs below as
    ``test_extensions.MarkEnd``: this module is on sys.path while the tests run)."""

    def __init__(self, path: str):
        self.path = path

    def on_train_end(self, trainer, pl_module) -> None:
        Path(self.path).write_text(str(trainer.global_step))


def invoke(*args: str):
    return CliRunner().invoke(app, [*args, *THREADS])


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_callbacks_and_a_logger_run_and_survive_resume(toy_plugin, tmp_path):
    run, ended, logs = tmp_path / "run", tmp_path / "ended.txt", tmp_path / "logs"
    config = tmp_path / "extras.yaml"
    config.write_text(yaml.safe_dump({"training": {
        "callbacks": [{"class": LR_MONITOR, "args": {"logging_interval": "step"}},
                      {"class": "test_extensions.MarkEnd", "args": {"path": str(ended)}}],
        "logger": {"class": "lightning.pytorch.loggers.CSVLogger", "args": {"save_dir": str(logs), "name": "mine"}},
    }}))
    res = invoke("train", "--plugin", "toy", "--out", str(run), "--config", str(config), *TINY)
    assert res.exit_code == 0, res.output
    assert f"added callback {LR_MONITOR}(logging_interval='step') (training.callbacks[0])" in res.stdout
    assert f"added callback test_extensions.MarkEnd(path={str(ended)!r}) (training.callbacks[1])" in res.stdout
    assert "added logger lightning.pytorch.loggers.CSVLogger(" in res.stdout and "besides the run's metrics.csv" in res.stdout
    assert ended.read_text() == "4"  # the custom callback ran
    mine = _rows(logs / "mine" / "version_0" / "metrics.csv")  # the added logger wrote its file
    assert [int(r["step"]) for r in mine if r.get("loss")] == list(range(4))
    assert any(r.get("lr-AdamW") for r in mine)  # LearningRateMonitor logged through it
    own = _rows(run / "metrics.csv")  # the run's own metrics.csv as always
    assert [int(r["step"]) for r in own if r["loss"]] == list(range(4))
    saved = yaml.safe_load((run / "config.yaml").read_text())["training"]
    assert saved["callbacks"][0] == {"class": LR_MONITOR, "args": {"logging_interval": "step"}}

    # --resume reads them back from config.yaml; the short name "csv" writes under the run
    res = invoke("train", "--out", str(run), "--resume", "--max-steps", "6", "--no-progress", "--set", "training.logger=csv")
    assert res.exit_code == 0, res.output
    assert "added callback test_extensions.MarkEnd" in res.stdout and "trained 6 steps" in res.stdout
    assert ended.read_text() == "6"
    assert [int(r["step"]) for r in _rows(run / "metrics.csv") if r["loss"]] == list(range(6))
    assert [int(r["step"]) for r in _rows(run / "logs" / "version_0" / "metrics.csv") if r.get("loss")] == [4, 5]

    # sampling never imports them: a run whose callback module is not installed still samples
    text = (run / "config.yaml").read_text().replace("test_extensions.MarkEnd", "not_installed_here.MarkEnd")
    (run / "config.yaml").write_text(text)
    res = invoke("sample", "--run", str(run), "--num", "4", "--out", str(tmp_path / "samples"))
    assert res.exit_code == 0, res.output


def _missing(package: str) -> bool:
    return importlib.util.find_spec(package) is None


LOGGERS_MISSING = [name for name, mod in (("tensorboard", "tensorboard"), ("wandb", "wandb"), ("mlflow", "mlflow")) if _missing(mod)]
if "tensorboard" in LOGGERS_MISSING and not _missing("tensorboardX"):
    LOGGERS_MISSING.remove("tensorboard")


@pytest.mark.parametrize("setting, start", [
    ("training.callbacks=[no_such_package.Thing]", "error: training.callbacks[0].class: no installed module 'no_such_package'"),
    ("training.callbacks=[lightning.pytorch.callbacks.NoSuchCallback]",
     "error: training.callbacks[0].class: module lightning.pytorch.callbacks has no 'NoSuchCallback'"),
    ("training.callbacks=[os.system]",  # a function: never called
     "error: training.callbacks[0].class: os.system is not a subclass of lightning.pytorch.callbacks.Callback"),
    ("training.callbacks=[collections.OrderedDict]",
     "error: training.callbacks[0].class: collections.OrderedDict is not a subclass of lightning.pytorch.callbacks.Callback"),
    ("training.callbacks=[./my_callbacks.py]", "error: training.callbacks[0].class: './my_callbacks.py' is not an import path"),
    ("training.callbacks=[/tmp/cb.Callback]", "error: training.callbacks[0].class: '/tmp/cb.Callback' is not an import path"),
    (f"training.callbacks=[{LR_MONITOR}, {{class: {LR_MONITOR}, args: {{interval: step}}}}]",
     f"error: training.callbacks[1].args: {LR_MONITOR} does not take these arguments"),
    (f"training.callbacks=[{{class: {LR_MONITOR}, args: {{logging_interval: hour}}}}]",
     f"error: training.callbacks[0].args: {LR_MONITOR}(logging_interval='hour') failed: MisconfigurationException"),
    (f"training.callbacks=[{{class: {LR_MONITOR}, args: {{logging_interval: 2024-01-01}}}}]",
     "error: training.callbacks[0].args: must hold plain YAML data only"),
    (f"training.callbacks=[{{class: {LR_MONITOR}, arguments: {{}}}}]",
     "error: unknown key 'training.callbacks[0].arguments' (allowed: class, args)"),
    ("training.callbacks=[csv]", "error: training.callbacks[0].class: 'csv' is a logger: set it as training.logger"),
    ("training.callbacks=[lightning.pytorch.callbacks.TQDMProgressBar]",
     "error: training.callbacks[0].class: lightning.pytorch.callbacks.TQDMProgressBar is a progress bar"),
    (f"training.logger={LR_MONITOR}", f"error: training.logger.class: {LR_MONITOR} is not a subclass of lightning.pytorch.loggers.Logger"),
    ("training.logger=csvv", "error: training.logger.class: 'csvv' is not an import path; name a class of an installed module "
     "as package.module.ClassName (files are never loaded); or one of csv, tensorboard, wandb, mlflow"),
    ("training.logger=false", "error: training.logger: expected an import path, a logger name"),
    *[(f"training.logger={name}", f"error: training.logger.class: '{name}' needs the {name} package, which is not installed: "
       f'pip install "diffcore[{name}]" (or pip install {name}') for name in LOGGERS_MISSING],
])
def test_bad_callbacks_and_loggers_are_refused_before_any_work(toy_plugin, tmp_path, setting, start):
    run = tmp_path / "run"
    res = invoke("train", "--plugin", "toy", "--out", str(run), *TINY, "--set", setting)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith(start), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not run.exists()  # nothing written
