"""The pytest side of `make gpu-check` (scripts/gpu_check.py): plugin facts, flags, and what a log says.

The GPU machine's python3 carries pytest plugins installed as packages (pytest-timeout, pytest-xdist,
pytest-cov, pytest-mock, hypothesis); pytest loads those from their ``pytest11`` entry points by
itself. Naming such a plugin again with ``-p <module>`` registers it twice, and pluggy refuses
("Plugin already registered under a different name", pytest exit code 3, no test run). So the
per-test timeout flag depends on how pytest-timeout is present:

    "entry-point"  installed as a package: ``--timeout=S`` alone
    "module"       importable but not installed (no entry point): ``-p pytest_timeout --timeout=S``
    None           absent: no per-test timeout (the stage cap still holds)

PROBE is Python source printing these facts as JSON (run it with the interpreter the stages use).
parse_verbose_log reads a ``pytest -v`` log: the counts so far and the test that started last
without a result (the one a killed stage was running), for a stage whose JUnit file was never
written.
"""
from __future__ import annotations

import re

__all__ = ["PROBE", "timeout_flags", "verbose_flags", "parse_verbose_log"]

PROBE = """
import importlib.metadata as md, importlib.util as u, json
eps = md.entry_points(group='pytest11')
names = sorted({f'{ep.name}={ep.value}' for ep in eps})
if any(ep.value.split(':')[0].split('.')[0] == 'pytest_timeout' for ep in eps):
    kind = 'entry-point'
elif u.find_spec('pytest_timeout') is not None:
    kind = 'module'
else:
    kind = None
print(json.dumps({'pytest_timeout': kind, 'pytest_plugins': names}))
"""


def timeout_flags(kind, seconds: float) -> list[str]:
    """pytest arguments for a per-test timeout of ``seconds`` given the probe's ``pytest_timeout`` kind."""
    if kind == "entry-point":
        return [f"--timeout={seconds:.0f}"]
    if kind == "module":
        return ["-p", "pytest_timeout", f"--timeout={seconds:.0f}"]
    if kind is None:
        return []
    raise ValueError(f"pytest_timeout kind must be 'entry-point', 'module' or None, got {kind!r}")


def verbose_flags() -> list[str]:
    """-v prints each test's id as it starts, so a log cut by a kill names the test that hung;
    -rfEs lists failures, errors and skip reasons; --durations the slowest tests."""
    return ["-v", "-rfEs", "--durations=15"]


# "tests/x.py::test_a[p] PASSED    [ 10%]" (-v); a test id with no result word after it has started.
_RESULT = re.compile(r"^(\S+::\S+)\s+(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
_STARTED = re.compile(r"^(\S+\.py::\S+)")
_KEY = {"PASSED": "passed", "XPASS": "passed", "FAILED": "failed", "ERROR": "errors", "SKIPPED": "skipped",
        "XFAIL": "skipped"}


def parse_verbose_log(text: str) -> dict:
    """{"passed", "failed", "errors", "skipped", "running"} from a ``pytest -v`` log; running is the id
    of the last test that started and has no result line (None when every started test finished)."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    running, finished = None, set()
    for line in text.splitlines():
        m = _RESULT.match(line)
        if m:
            tid, word = m.groups()
            if tid not in finished:
                counts[_KEY[word]] += 1
            elif word == "ERROR":  # an error at teardown, after the test's own PASSED line
                counts["errors"] += 1
            finished.add(tid)
            continue
        m = _STARTED.match(line)
        if m:
            running = m.group(1)
    return {**counts, "running": None if running in finished else running}
