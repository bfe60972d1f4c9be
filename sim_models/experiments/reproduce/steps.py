"""The step runner of `sim reproduce`: each step writes one result file atomically; a rerun skips it.

``StepRunner(out).run(name, fn)``: if ``OUT/steps/<name>.json`` exists, its stored result is returned
and ``fn`` is not called; else ``fn()`` runs, its (JSON-able) result is written atomically
(``util.atomic_write.atomic_write_json``: a kill leaves either no file or the whole file), and one line with
the step's time is printed. A step that trains resumes its own run from the run's checkpoint (the
trainer's ``fit(resume=True)``), so a kill inside a step loses at most the steps since that checkpoint.

``run_many(calls, jobs)``: independent steps (``(name, function, args)``, the function importable at module level)
in up to ``jobs`` worker processes at once (``spawn``; each worker with ``threads`` torch threads); each result
is written by this process as soon as its step finishes, so a kill loses only the steps still running. With
``jobs`` = 1 it is ``run`` on each in order.

Test hook (inert unless set; never set it in real runs): ``SIM_REPRODUCE_KILL_AFTER=<step name>`` makes
the process SIGKILL itself right after that step's result is written, so a test can check that a rerun
redoes nothing (tests/sim_models/experiments/test_reproduce.py).
"""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch

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
        return self._record(name, result, time.time() - t0)

    def _record(self, name: str, result, secs: float):
        atomic_write_json(self.path(name), {"step": name, "seconds": round(secs, 1), "finished_at": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "result": result})
        self.times[name] = secs
        self.ran.append(name)
        self.log(f"[reproduce] {name}: done in {secs:.0f} s")
        if os.environ.get(ENV_KILL_AFTER) == name:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    def run_many(self, calls: list, jobs: int = 1, threads: int = 1) -> dict:
        """{name: result} of the steps ``calls`` = [(name, function, args), ...]: the done ones read back, the others
        run ``jobs`` at a time in worker processes with ``threads`` torch threads each (jobs <= 1: in this process,
        in order). A failed step raises RuntimeError naming it after the steps already running have finished
        (their results are kept); the steps not yet started are not run."""
        if jobs < 1 or threads < 1:
            raise ValueError(f"jobs and threads must be >= 1, got jobs={jobs}, threads={threads}")
        results = {}
        for name, _, _ in calls:
            self.path(name)  # a bad name fails before anything runs
        pending = [c for c in calls if not self.done(c[0])]
        if jobs == 1 or len(pending) <= 1:
            return {name: self.run(name, lambda f=fn, a=args: f(*a)) for name, fn, args in calls}
        for name, _, _ in calls:
            if self.done(name):
                results[name] = self.run(name, None)
        self.log(f"[reproduce] {len(pending)} steps in {min(jobs, len(pending))} processes: "
                 + ", ".join(n for n, _, _ in pending))
        failure = None
        with ProcessPoolExecutor(max_workers=min(jobs, len(pending)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=torch.set_num_threads, initargs=(threads,)) as pool:
            running = {pool.submit(_timed, fn, args): name for name, fn, args in pending}
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    name = running.pop(fut)
                    try:
                        result, secs = fut.result()
                    except Exception as e:  # the others already running finish and are recorded
                        if failure is None:
                            failure = (name, e)
                            for other in running:
                                other.cancel()
                        continue
                    results[name] = self._record(name, result, secs)
        if failure is not None:
            raise RuntimeError(f"step {failure[0]} failed: {failure[1]!r}") from failure[1]
        return {name: results[name] for name, _, _ in calls}


def _timed(fn, args) -> tuple:
    """(fn(*args), seconds): what a worker process returns."""
    t0 = time.time()
    return fn(*args), time.time() - t0
