"""`make gpu-check` killed mid-stage (SIGKILL: no handler runs) still leaves its results in OUT: the
summary JSON of every finished stage, the logs, and the stage that was running with the test it was in.

Runs the real check (a dry run here) on two test stages of this tree (--stages: no copy, no build):
tests-gpu (every test skips without a GPU: quick) then tests-triton (the interpreter: minutes), and
kills the check once tests-triton has started a test.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _summary(out: Path):
    try:
        return json.loads((out / "gpu_check.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.slow
def test_check_killed_mid_stage_keeps_the_earlier_stages(tmp_path):
    out = tmp_path / "out"
    check = subprocess.Popen([sys.executable, "scripts/gpu_check.py", "--out", str(out), "--stages",
                              "tests-gpu,tests-triton"], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, "TRITON_INTERPRET": "1"})
    try:
        deadline, running = time.monotonic() + 300, None
        while time.monotonic() < deadline and check.poll() is None:
            s = _summary(out)
            running = next((st for st in (s or {}).get("stages", []) if st["name"] == "tests-triton"
                            and st["status"] == "running" and "pid" in st), None)
            log = out / "logs" / "tests-triton.log"
            if running and log.exists() and "::test_" in log.read_text(errors="replace"):
                break
            time.sleep(0.5)
        assert running is not None and check.poll() is None, "tests-triton never started a test"
        check.send_signal(signal.SIGKILL)
        check.wait(timeout=30)
    finally:
        if check.poll() is None:
            check.kill()
    s = _summary(out)
    stages = {st["name"]: st for st in s["stages"]}
    assert stages["env"]["status"] == "ok" and s["env"]["torch"]
    assert stages["build"]["status"] == "skipped" and "not selected" in stages["build"]["reason"]
    gpu = stages["tests-gpu"]
    assert gpu["status"] == "ok" and gpu["summary"].startswith("0 passed, 0 failed, 0 errors,")
    assert s["tests"]["skipped"] > 0 and (out / "logs" / "tests-gpu.xml").exists()
    assert stages["tests-triton"]["status"] == "running"  # the JSON names the stage it was killed in
    assert s["verdict"].startswith("incomplete")
    log = (out / "logs" / "tests-triton.log").read_text()
    assert log.startswith("$ ") and " -v " in log.splitlines()[0] and "::test_" in log  # -v: the test is named
    assert (out / "gpu_check.md").exists()
    for _ in range(100):  # the stage's pytest dies with the check (PR_SET_PDEATHSIG)
        if not _alive(stages["tests-triton"]["pid"]):
            break
        time.sleep(0.1)
    assert not _alive(stages["tests-triton"]["pid"])


_RUNNER = """
import json, sys
from pathlib import Path
from scripts.gpu_check_runner import Runner
out = Path(sys.argv[1])
r = Runner(out / "logs", 100.0)
r.on_change = lambda: (out / "s.json").write_text(json.dumps(r.stages))
r.run("quick", [sys.executable, "-c", "print('done')"], 30, out)
r.run("hang", [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(120)"], 60, out)
"""


def test_sigterm_kills_the_running_stage_and_records_it(tmp_path):
    """SIGTERM (a time limit's first signal): the running stage's process group is killed, the stage
    is recorded as killed beside the finished ones, and the runner exits 143."""
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER, str(tmp_path)], cwd=ROOT)
    try:
        for _ in range(600):
            log = tmp_path / "logs" / "hang.log"
            if log.exists() and "started" in log.read_text():
                break
            time.sleep(0.1)
        stages = json.loads((tmp_path / "s.json").read_text())
        pid = stages[-1]["pid"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    stages = json.loads((tmp_path / "s.json").read_text())
    assert [(s["name"], s["status"]) for s in stages] == [("quick", "ok"), ("hang", "killed")]
    assert "SIGTERM" in stages[1]["reason"] and (tmp_path / "logs" / "quick.log").read_text().endswith("done\n")
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    assert not _alive(pid)
