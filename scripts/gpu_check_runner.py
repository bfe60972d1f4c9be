"""The stage runner of `make gpu-check` (scripts/gpu_check.py): time-boxed commands whose results
survive a kill of the check itself.

Each stage's output goes to ``logs/<stage>.log`` (under OUT) from its first byte. The runner calls
``on_change()`` when a stage starts (recorded with status "running") and when it ends, and the check
rewrites its summary JSON there: the file on disk always holds every finished stage and names the
one in progress (with its pid). A stage's process gets SIGKILL when the check dies. SIGTERM, SIGINT and SIGHUP kill the running stage's process group, record it as
"killed" and raise SystemExit(143) so the caller's ``finally`` writes the last report; SIGKILL
cannot be caught, and the JSON of the last finished stage is what remains.

Statuses: ok, failed, timeout (the stage cap or the budget), killed (the check was stopped),
skipped (with a reason), running (only in a JSON written mid-stage).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

__all__ = ["Runner", "REPORT_RESERVE"]

REPORT_RESERVE = 20.0  # seconds of the budget kept for writing the report


def _die_with_parent() -> None:
    """In the stage's process (Linux): SIGKILL it when the check dies, even by SIGKILL, so no stage outlives it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Runner:
    """Runs stages against one deadline (``budget`` seconds from now) and keeps their records.

    logs: the folder of the stage logs (created); slack: the caps are multiplied by it (a dry run on
    a small CPU machine); on_change: called after every change of ``stages`` (never raises out).
    """

    def __init__(self, logs: Path, budget: float, slack: float = 1.0, on_change: Callable[[], None] | None = None):
        self.logs, self.slack, self.on_change = Path(logs), slack, on_change
        self.logs.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + budget
        self.stages: list[dict] = []
        self._proc: subprocess.Popen | None = None
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._stop)

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception as e:  # a report that cannot be written must not stop the stages
                print(f"[gpu-check] writing the summary failed: {type(e).__name__}: {e}", flush=True)

    def _stop(self, signum, frame):
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        for st in self.stages:
            if st["status"] == "running":
                st["status"], st["reason"] = "killed", f"the check got signal {signal.Signals(signum).name}"
        self._changed()
        raise SystemExit(128 + signum)

    def left(self) -> float:
        return self.deadline - time.monotonic() - REPORT_RESERVE

    def record(self, st: dict) -> dict:
        """Append a stage record made elsewhere (the env probe) and report it."""
        self.stages.append(st)
        self._changed()
        return st

    def skip(self, name: str, reason: str) -> dict:
        print(f"[gpu-check] {name}: skipped: {reason}", flush=True)
        return self.record({"name": name, "status": "skipped", "seconds": 0.0, "reason": reason})

    def run(self, name: str, cmd: list[str], cap: float, cwd: Path, env: dict | None = None,
            min_needed: float = 10.0) -> dict:
        """Run ``cmd`` with a timeout of min(cap * slack, time left); its output goes to logs/<name>.log."""
        timeout = min(cap * self.slack, self.left())
        if timeout < min_needed:
            return self.skip(name, f"out of time ({max(0.0, self.left()):.0f} s left of the budget)")
        log = self.logs / f"{name}.log"
        print(f"[gpu-check] {name}: {' '.join(map(str, cmd))} (timeout {timeout:.0f} s)", flush=True)
        st = {"name": name, "status": "running", "rc": None, "seconds": 0.0, "log": f"logs/{log.name}"}
        self.record(st)
        t0 = time.monotonic()
        with open(log, "w") as f:
            f.write(f"$ {' '.join(map(str, cmd))}\n")
            f.flush()
            try:
                self._proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=f,
                                              stderr=subprocess.STDOUT, start_new_session=True,
                                              preexec_fn=_die_with_parent)
                st["pid"] = self._proc.pid
                self._changed()
                rc = self._proc.wait(timeout=timeout)
                status = "ok" if rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
                rc, status = None, "timeout"
                st["reason"] = f"killed after {timeout:.0f} s"
            except OSError as e:
                f.write(f"\n{e}\n")
                rc, status = None, "failed"
            finally:
                self._proc = None
        st.update(status=status, rc=rc, seconds=round(time.monotonic() - t0, 1))
        print(f"[gpu-check] {name}: {status} in {st['seconds']} s", flush=True)
        self._changed()
        return st
