"""Training logs: CSV (metrics.csv), JSON lines (metrics.jsonl) and TensorBoard (when installed).

One row per (step, module): step, unit, epoch, module, loss, nce, kl, accuracy, lr.
Files are appended to, so a resumed run continues the same logs.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

__all__ = ["RunLogger", "NullLogger", "FIELDS"]

FIELDS = ("step", "unit", "epoch", "module", "loss", "nce", "kl", "accuracy", "lr")


class RunLogger:
    def __init__(self, run_dir, tensorboard: bool = True):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        csv_path = self.dir / "metrics.csv"
        new = not csv_path.exists()
        self._csv_file = open(csv_path, "a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=FIELDS)
        if new:
            self._csv.writeheader()
        self._jsonl = open(self.dir / "metrics.jsonl", "a")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
                self._tb = SummaryWriter(str(self.dir / "tensorboard"))
            except Exception:
                self._tb = None

    def log(self, row: dict):
        row = {k: row.get(k) for k in FIELDS}
        self._csv.writerow(row)
        self._jsonl.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k in ("loss", "nce", "kl", "accuracy", "lr"):
                if row[k] is not None:
                    self._tb.add_scalar(f"module{row['module']}/{k}", row[k], row["step"])

    def flush(self):
        self._csv_file.flush()
        self._jsonl.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self):
        self.flush()
        self._csv_file.close()
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


class NullLogger:
    """The RunLogger interface writing nothing: what processes other than rank 0 log into."""

    def log(self, row: dict):
        pass

    def flush(self):
        pass

    def close(self):
        pass
