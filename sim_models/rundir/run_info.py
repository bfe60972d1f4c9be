"""RUN_DIR/run_info.json: what a run was trained on, so `sim eval --run R` and `sim report R` need no --data.

``sim train`` (and ``sim demo``) call ``record_data_path(run_dir, data)`` before training: the absolute
path of the data folder goes into run_info.json, written atomically (temp file + os.replace), merged
with what the file already holds (a ``--resume`` on other data records the new path). Later commands
call ``resolve_data(run_dir, data)``: an explicit ``--data`` wins; else the recorded path, which must
still exist; else a ValueError that names ``--data``.

Format (JSON object; unknown keys are kept)::

    {"data": "/abs/path/to/data", "data_as_given": "data/syllables", "recorded_by": "sim train",
     "recorded_at": "2026-11-30T03:00:00Z"}
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from sim_models.util.atomic_write import atomic_write_text

__all__ = ["RUN_INFO_NAME", "read_run_info", "record_data_path", "recorded_data_path", "resolve_data"]

RUN_INFO_NAME = "run_info.json"


def read_run_info(run_dir) -> dict:
    """The run's run_info.json as a dict ({} when there is none). Raises ValueError if it is not a JSON object."""
    path = Path(run_dir) / RUN_INFO_NAME
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(info, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(info).__name__}")
    return info


def record_data_path(run_dir, data, recorded_by: str = "sim train") -> Path:
    """Record ``data`` (made absolute) as the run's training data in RUN_DIR/run_info.json. Returns the file."""
    if data is None or str(data) == "":
        raise ValueError("data must be a path, got nothing")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        info = read_run_info(run_dir)
    except ValueError:
        info = {}  # a damaged file is replaced
    info.update({"data": str(Path(data).resolve()), "data_as_given": str(data), "recorded_by": recorded_by,
                 "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return atomic_write_text(run_dir / RUN_INFO_NAME, json.dumps(info, indent=2) + "\n")


def recorded_data_path(run_dir) -> Path | None:
    """The data path recorded at `sim train` time, or None if none was recorded (runs from before this file)."""
    data = read_run_info(run_dir).get("data")
    return Path(data) if data else None


def resolve_data(run_dir, data=None) -> Path:
    """The data folder for a command on ``run_dir``: ``data`` if given, else the recorded one.

    Raises ValueError naming --data when nothing is recorded or the recorded folder is gone."""
    if data is not None and str(data) != "":
        return Path(data)
    run_dir = Path(run_dir)
    recorded = recorded_data_path(run_dir)
    if recorded is None:
        raise ValueError(f"{run_dir} does not record the data it was trained on (no 'data' in "
                         f"{run_dir / RUN_INFO_NAME}; runs trained before this was added have none): pass --data DIR")
    if not recorded.is_dir():
        raise ValueError(f"{run_dir} was trained on {recorded}, which no longer exists: pass --data DIR "
                         "(the data folder, e.g. made again with `sim data --out DIR`)")
    return recorded
