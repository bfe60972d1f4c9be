"""Test hooks for the crash-safety tests (tests/sim_models/rundir/test_crash_safety.py). Inert unless set.

They let a test SIGKILL a `sim train` process at an exact point instead of at a random time:

    SIM_TEST_PAUSE_AT="step:N"        pause once optimiser step N is applied (position updated), before
                                      that step's log rows and checkpoint
    SIM_TEST_PAUSE_AT="checkpoint:N"  pause inside the N-th checkpoint write of this process: the temp file
                                      is written and fsynced, ``os.replace`` onto checkpoint.pt not yet done
    SIM_TEST_PAUSE_MARKER=PATH        created when the pause begins (text: the pause point), so the test
                                      knows when to send SIGKILL
    SIM_TEST_PAUSE_SECONDS=S          how long the pause lasts (default 300); then the run simply continues

With SIM_TEST_PAUSE_AT unset a pause point costs one dictionary lookup. Never set these in real runs.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

__all__ = ["pause_point", "ENV_PAUSE_AT", "ENV_PAUSE_MARKER", "ENV_PAUSE_SECONDS"]

ENV_PAUSE_AT = "SIM_TEST_PAUSE_AT"
ENV_PAUSE_MARKER = "SIM_TEST_PAUSE_MARKER"
ENV_PAUSE_SECONDS = "SIM_TEST_PAUSE_SECONDS"

_counts: dict = {}


def pause_point(kind: str, number: int | None = None) -> None:
    """Pause here if SIM_TEST_PAUSE_AT == f"{kind}:{number}".

    number: e.g. the step; None counts the calls of this ``kind`` in this process (1, 2, ...).
    """
    spec = os.environ.get(ENV_PAUSE_AT)
    if not spec:
        return
    if number is None:
        number = _counts[kind] = _counts.get(kind, 0) + 1
    if spec.strip() != f"{kind}:{number}":
        return
    marker = os.environ.get(ENV_PAUSE_MARKER)
    if marker:
        Path(marker).write_text(spec)
    print(f"[sim test hook] paused at {spec} (pid {os.getpid()})", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get(ENV_PAUSE_SECONDS, "300")))
