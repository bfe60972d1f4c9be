"""Weight snapshots of a training run: RUN_DIR/snapshots/epoch_EEEE.pt (``train.snapshot_every``).

The checkpoint (checkpoint.pt) holds only the latest state; a snapshot keeps the model's weights as they were
at one epoch end, so a quantity can be followed over training afterwards (the per-unit KL trajectory,
sim_models/analysis/kl_trajectory.py) without slowing the training loop down. A snapshot is the model's
state dict, the epoch (epochs completed: 0 = the initialisation) and the training step, written atomically
like a checkpoint; in ``train.mode="sequential"`` the file name also carries the unit
(``unit1_epoch_0003.pt``). Resuming rewrites an existing snapshot of the same epoch with the same weights.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sim_models.config import load_config
from sim_models.rundir.checkpoint import load_checkpoint, save_checkpoint
from sim_models.rundir.load import frozen_model

__all__ = ["SNAPSHOT_DIR", "Snapshot", "snapshot_path", "save_snapshot", "list_snapshots", "load_snapshot_model"]

SNAPSHOT_DIR = "snapshots"
_NAME = re.compile(r"^(?:unit(\d+)_)?epoch_(\d+)\.pt$")


@dataclass(frozen=True)
class Snapshot:
    """epoch: epochs completed when it was taken (0: before the first step); unit: the training unit in
    sequential mode (None in parallel mode); path: the file."""
    epoch: int
    unit: int | None
    path: Path


def snapshot_path(run_dir, epoch: int, unit: int | None = None) -> Path:
    if epoch < 0 or (unit is not None and unit < 0):
        raise ValueError(f"epoch and unit must be >= 0, got epoch={epoch}, unit={unit}")
    prefix = "" if unit is None else f"unit{unit}_"
    return Path(run_dir) / SNAPSHOT_DIR / f"{prefix}epoch_{epoch:04d}.pt"


def save_snapshot(model_state: dict, run_dir, epoch: int, step: int, unit: int | None = None) -> Path:
    """Write ``model_state`` (a state dict of CPU tensors) as the snapshot of ``epoch`` atomically; returns its path."""
    return save_checkpoint({"model": model_state, "epoch": int(epoch), "step": int(step),
                            "unit": -1 if unit is None else int(unit)}, snapshot_path(run_dir, epoch, unit))


def list_snapshots(run_dir) -> list:
    """The run's snapshots, ordered by (unit, epoch); [] when it has none. Files of another name are ignored."""
    folder = Path(run_dir) / SNAPSHOT_DIR
    found = []
    for p in folder.glob("*.pt") if folder.is_dir() else ():
        m = _NAME.match(p.name)
        if m:
            found.append(Snapshot(int(m.group(2)), None if m.group(1) is None else int(m.group(1)), p))
    return sorted(found, key=lambda s: (-1 if s.unit is None else s.unit, s.epoch))


def load_snapshot_model(run_dir, snapshot: Snapshot):
    """The run's model (from RUN_DIR/config.yaml) with the snapshot's weights, in eval mode, no gradients."""
    return frozen_model(load_config(Path(run_dir) / "config.yaml"), load_checkpoint(snapshot.path)["model"])
