"""The step runner of `sim reproduce`: each step writes one result file atomically; a rerun skips it.

``StepRunner(out).run(name, fn)``: if ``OUT/steps/<name>.json`` exists, its stored result is returned
and ``fn`` is not called; else ``fn()`` runs, its (JSON-able) result is written atomically
(``util.atomic_write.atomic_write_json``: a kill leaves either no file or the whole file), and one line with
the step's time is printed. A step that trains resumes its own run from the run's checkpoint (the
trainer's ``fit(resume=True)``), so a kill inside a step loses at most the steps since that checkpoint.

Test hook (inert unless set; never set it in real runs): ``SIM_REPRODUCE_KILL_AFTER=<step name>`` makes
the process SIGKILL itself right after that step's result is written, so a test can check that a rerun
redoes nothing (tests/sim_models/experiments/test_reproduce.py).
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from sim_models.util.atomic_write import atomic_write_json

__all__ = ["StepRunner", "ENV_KILL_AFTER"]

ENV_KILL_AFTER = "SIM_REPRODUCE_KILL_AFTER"


class StepRunner:
    """Runs named steps once. ``times``: {step: seconds} of the steps run or recorded before."""

    def __init__(self, out, log=print):
        self.dir = Path(out) / "steps"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.times: dict = {}
        self.skipped: list = []
        self.ran: list = []

    def path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"step name must be a plain file name, got {name!r}")
        return self.dir / f"{name}.json"

    def done(self, name: str) -> bool:
        return self.path(name).is_file()

    def run(self, name: str, fn):
        path = self.path(name)
        if path.is_file():
            rec = json.loads(path.read_text())
            self.times[name] = rec.get("seconds", 0.0)
            self.skipped.append(name)
            self.log(f"[reproduce] {name}: done before ({rec.get('seconds', 0):.0f} s then), skipped")
            return rec["result"]
        t0 = time.time()
        result = fn()
        secs = time.time() - t0
        atomic_write_json(path, {"step": name, "seconds": round(secs, 1), "finished_at": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "result": result})
        self.times[name] = secs
        self.ran.append(name)
        self.log(f"[reproduce] {name}: done in {secs:.0f} s")
        if os.environ.get(ENV_KILL_AFTER) == name:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
