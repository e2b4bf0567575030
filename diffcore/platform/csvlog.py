"""RUN/metrics.csv: Lightning's CSV logger writing straight into the run directory, appending
on ``--resume``. Every run has it, whatever logger ``training.logger`` adds (:mod:`.extensions`)."""

from __future__ import annotations

import csv
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv; a resumed run appends to it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys = sorted(header)


class RunCSVLogger(CSVLogger):
    """CSV metrics written straight into the run directory (RUN/metrics.csv)."""

    def __init__(self, run_dir: Path, flush_logs_every_n_steps: int = 50):
        super().__init__(save_dir=run_dir, name="", version="", flush_logs_every_n_steps=flush_logs_every_n_steps)

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is None:
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
