"""Crash safety of a training run: checks before the first step, and a clear record when a run fails.

* ``prepare_run_dir(run_dir, required_bytes)`` - before training starts: create the run folder, prove it
  is writable with a real write probe (create, write, fsync and remove a small file) and check that its
  file system has room for a checkpoint. Raises ``RunDirError`` naming the folder. (Permission bits
  alone say nothing when running as root, and a read-only mount or a full disk only shows on a write.)
* ``estimate_checkpoint_bytes(model)`` - the size of a checkpoint: model state plus Adam's two moments
  per parameter, plus a little for the rest.
* ``FiniteLossWatch`` - remembers the first step whose loss was NaN or infinite, without a host sync per
  step; ``check()`` (called where the trainer syncs anyway: at log steps and before every checkpoint)
  raises ``FloatingPointError``, so a diverged state is never written over the last good checkpoint.
* ``record_failure(run_dir, error, position, last_checkpoint)`` - writes RUN_DIR/failure.json and
  returns the message of ``TrainingFailed``: where the run stopped and which checkpoint to resume from.
* ``trim_logs(run_dir, step)`` - on resume, drops log rows of steps after the checkpoint (and a
  half-written last line): the resumed run logs those steps again, once, so its logs equal those of an
  uninterrupted run.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from sim_models.util.atomic_write import atomic_write_text

__all__ = ["RunDirError", "TrainingFailed", "prepare_run_dir", "estimate_checkpoint_bytes", "FiniteLossWatch",
           "record_failure", "clear_failure", "trim_logs", "FAILURE_NAME", "LOG_HEADROOM_BYTES"]

FAILURE_NAME = "failure.json"
LOG_HEADROOM_BYTES = 8 * 2**20  # metrics.csv / .jsonl / config.yaml of a run: far below this


class RunDirError(OSError):
    """The run folder cannot hold the run (not a folder, not writable, or too little free space)."""


class TrainingFailed(RuntimeError):
    """Training stopped on an error; the message says where and which checkpoint to resume from."""


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def prepare_run_dir(run_dir, required_bytes: int) -> Path:
    """Create ``run_dir`` and check it can take the run's files before any training step.

    required_bytes: free space needed on its file system (see estimate_checkpoint_bytes).
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"the run folder {run_dir} is a file, not a folder: choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in run_dir.parents if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker is not None else (e.strerror or str(e))
        raise RunDirError(f"cannot create the run folder {run_dir}: {why}") from e
    _write_probe(run_dir)
    free = shutil.disk_usage(run_dir).free
    if free < required_bytes:
        raise RunDirError(f"not enough free space for the run folder {run_dir}: {_mib(free)} free on its file "
                          f"system, the run needs about {_mib(required_bytes)} (a checkpoint of model and optimiser "
                          f"state, written beside the previous one, plus logs)")
    return run_dir


def _write_probe(run_dir: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-probe.", dir=run_dir)
    except OSError as e:
        raise RunDirError(f"the run folder {run_dir} is not writable: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise RunDirError(f"cannot write to the run folder {run_dir}: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def estimate_checkpoint_bytes(model: torch.nn.Module, optimizer_states_per_param: int = 2) -> int:
    """Bytes of a checkpoint: the model's state dict plus Adam's exp_avg and exp_avg_sq per parameter,
    plus 1 MiB for the rest (schedules, generator state, config, pickle framing)."""
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return state + optimizer_states_per_param * params + 2**20


class FiniteLossWatch:
    """update(losses, step) per step (no host sync); check() raises if any loss so far was NaN or inf."""

    def __init__(self):
        self._first_bad = None  # () int64 tensor on the losses' device: first bad step, -1 = none yet

    def update(self, losses, step: int) -> None:
        vals = torch.stack([loss.detach().float().reshape(()) for loss in losses])
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.int64, device=vals.device)
        bad = ~torch.isfinite(vals).all()
        self._first_bad = torch.where(bad & (self._first_bad < 0), step, self._first_bad)

    def first_bad_step(self) -> int | None:
        """The first step whose loss was NaN or inf, or None (a host sync)."""
        first = -1 if self._first_bad is None else int(self._first_bad)
        return first if first >= 0 else None

    def check(self, first_bad: int | None = None) -> None:
        """Raise at the first bad step: this watch's own, or ``first_bad`` if given (agreed over ranks)."""
        first = self.first_bad_step() if first_bad is None else first_bad
        if first is not None:
            raise FloatingPointError(f"the loss became NaN or infinite at step {first}")


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text, newline="")  # rows keep their own line ends


def record_failure(run_dir, error: BaseException, position: dict, last_checkpoint, write: bool = True) -> str:
    """Write RUN_DIR/failure.json (unless ``write`` is False: ranks other than 0); return a message saying
    where the run stopped.

    position: the trainer's {"unit", "epoch", "batch", "step"} when it stopped (counted from 0; "step" =
    optimiser steps completed, "batch" = the next batch of that epoch). last_checkpoint: (path, step) of
    the last checkpoint this run wrote or resumed from, or None.
    """
    run_dir = Path(run_dir)
    pos = {k: position.get(k) for k in ("unit", "epoch", "batch", "step")}
    where = (f"after step {pos['step']} (unit {pos['unit']}, epoch {pos['epoch']}, batch {pos['batch']}; "
             f"counted from 0)")
    if last_checkpoint is not None:
        ck_path, ck_step = str(last_checkpoint[0]), int(last_checkpoint[1])
        resume = (f"last good checkpoint: {ck_path} (step {ck_step}); continue with "
                  f"`sim train --resume --out {run_dir} ...`")
    else:
        ck_path, ck_step = None, None
        resume = "no checkpoint was written by this run: a new start begins at step 0"
    msg = f"training stopped {where} by {type(error).__name__}: {error}\n  {resume}"
    record = {"error": type(error).__name__, "message": str(error), "position": pos, "last_checkpoint": ck_path,
              "last_checkpoint_step": ck_step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if not write:
        return msg
    try:
        _atomic_write_text(run_dir / FAILURE_NAME, json.dumps(record, indent=2) + "\n")
        msg += f"\n  details: {run_dir / FAILURE_NAME}"
    except OSError as e:  # e.g. the disk that made the run fail is full: the message still says it all
        msg += f"\n  (could not write {run_dir / FAILURE_NAME}: {e})"
    return msg


def clear_failure(run_dir) -> None:
    """A run that completed has no failure to report: remove a failure.json of an earlier attempt."""
    with contextlib.suppress(FileNotFoundError):
        (Path(run_dir) / FAILURE_NAME).unlink()


def _csv_row_step(line: str):
    return int(line.split(",", 1)[0])


def _jsonl_row_step(line: str):
    return int(json.loads(line)["step"])


def trim_logs(run_dir, step: int) -> None:
    """Keep only complete rows of steps <= ``step`` in RUN_DIR/metrics.csv and metrics.jsonl.

    A line is complete when it ends in a newline (rows are appended, so only the last can be cut).
    """
    for name, row_step, header in (("metrics.csv", _csv_row_step, True), ("metrics.jsonl", _jsonl_row_step, False)):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        with open(path, newline="") as f:  # no newline translation: the csv rows end in \r\n
            lines = f.read().splitlines(keepends=True)
        complete = [ln for ln in lines if ln.endswith("\n")]
        head, rows = (complete[:1], complete[1:]) if header else ([], complete)
        kept = list(head)
        for ln in rows:
            try:
                if row_step(ln) <= step:
                    kept.append(ln)
            except (ValueError, KeyError, TypeError):
                pass  # a damaged row: dropped
        if kept != lines:
            _atomic_write_text(path, "".join(kept))
