"""Training logs: CSV (metrics.csv), JSON lines (metrics.jsonl) and TensorBoard (when installed).

One row per (step, module, split), columns in this order (``FIELDS``):

    step      optimiser steps done when the row was written (int)
    unit      training unit (sequential mode: the unit being trained; parallel: 0)
    epoch     epoch of that unit, counted from 0
    module    stage index, counted from 0 (architectures.stage_layer_names gives the layer it taps)
    loss      the stage's loss (NCE + beta * KL; supervised: cross-entropy), nats
    nce       its InfoNCE term averaged over k (supervised: the cross-entropy), nats
    kl        its KL term as reduced by model.kl_reduction (before beta), nats; 0 for deterministic stages
    accuracy  fraction of anchors whose positive scores highest (supervised: classification accuracy)
    lr        the unit's learning rate at that step; empty for validation rows
    split     "train": the training batch of that step; "val": the mean over the whole validation set at
              the end of an epoch (trainer.py: no gradient, fixed-seed draws), logged at that epoch's last step

``split`` is the last column and was added after the others: a metrics.csv written before it has no such
column (read its rows as "train"); when a run with such a file resumes, the header gains the column and
the old rows keep their nine fields (csv.DictReader then gives split = None for them). Readers that
predate the column see the validation rows as extra rows: filter on ``split`` (``read_metrics`` does).
Files are appended to, so a resumed run continues the same logs.
"""
from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path

from sim_models.util.atomic_write import atomic_write_text

__all__ = ["RunLogger", "NullLogger", "FIELDS", "read_metrics", "read_metric_rows"]

FIELDS = ("step", "unit", "epoch", "module", "loss", "nce", "kl", "accuracy", "lr", "split")
_OLD_FIELDS = FIELDS[:-1]  # metrics.csv before the split column
_INTS = ("step", "unit", "epoch", "module")
_FLOATS = ("loss", "nce", "kl", "accuracy", "lr")


def read_metrics(run_dir, split: str | None = "train") -> list:
    """Rows of RUN_DIR/metrics.csv as dicts with ints and floats (lr None on validation rows); rows of an
    old file without the split column count as "train". split: "train", "val" or None (all rows)."""
    rows = []
    for r in _csv_rows(Path(run_dir) / "metrics.csv"):
        row = {k: (int(r[k]) if k in _INTS else (float(r[k]) if r.get(k) not in (None, "") else None))
               for k in _INTS + _FLOATS}
        row["split"] = r.get("split") or "train"
        if split is None or row["split"] == split:
            rows.append(row)
    return rows


def read_metric_rows(run_dir) -> list:
    """Every row of RUN_DIR/metrics.jsonl (else metrics.csv) as a dict, whatever its columns (a log of another
    shape, e.g. with a ``val_loss`` column, reads too): numbers as float, empty cells as None, ``split`` as
    written; a jsonl line cut by a crash mid-write is skipped. FileNotFoundError when neither file exists.
    (``read_metrics`` is the typed reader of this module's own logs; the analyses read with this one.)"""
    run_dir = Path(run_dir)
    jl, cs = run_dir / "metrics.jsonl", run_dir / "metrics.csv"
    if jl.is_file():
        rows = _jsonl_rows(jl)
    elif cs.is_file():
        rows = _csv_rows(cs)
    else:
        raise FileNotFoundError(f"run_dir {run_dir} has no metrics.jsonl or metrics.csv")
    return [{k: (v if k == "split" else _number(v)) for k, v in r.items()} for r in rows]


def _csv_rows(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _jsonl_rows(path: Path) -> list:
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash mid-write: skip it
            continue
    return rows


def _number(v):
    """float(v); None for None or ""; v itself when it is not a number."""
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _upgrade_header(csv_path: Path) -> None:
    """Give a metrics.csv written before the split column the current header (rows unchanged), atomically."""
    with open(csv_path, newline="") as f:
        text = f.read()
    first, sep, rest = text.partition("\n")
    if first.rstrip("\r").split(",") != list(_OLD_FIELDS):
        return
    header = ",".join(FIELDS) + ("\r" if first.endswith("\r") else "") + sep
    with contextlib.suppress(Exception):  # as before: a failed upgrade leaves the old header (rows still read)
        atomic_write_text(csv_path, header + rest, newline="")
        raise


class RunLogger:
    def __init__(self, run_dir, tensorboard: bool = True):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        csv_path = self.dir / "metrics.csv"
        new = not csv_path.exists()
        if not new:
            _upgrade_header(csv_path)
        self._csv_file = open(csv_path, "a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=FIELDS)
        if new:
            self._csv.writeheader()
        self._jsonl = open(self.dir / "metrics.jsonl", "a")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # deferred optional import (the tensorboard package)
                self._tb = SummaryWriter(str(self.dir / "tensorboard"))
            except Exception:
                self._tb = None

    def log(self, row: dict):
        row = {k: row.get(k) for k in FIELDS}
        self._csv.writerow(row)
        self._jsonl.write(json.dumps(row) + "\n")
        if self._tb is not None:
            val = row["split"] == "val"
            for k in ("loss", "nce", "kl", "accuracy", "lr"):
                if row[k] is not None:
                    self._tb.add_scalar(f"module{row['module']}/{'val_' if val else ''}{k}", row[k], row["step"])

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
