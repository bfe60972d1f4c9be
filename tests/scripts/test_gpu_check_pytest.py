"""The pytest flags of `make gpu-check` (scripts/gpu_check_pytest.py) under this interpreter's plugins,
the -v log parser, and the fuzz stage's Hypothesis bound (scripts/gpu_check_hypothesis.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import gpu_check
from scripts import gpu_check_pytest as gp

TINY = "def test_one():\n    assert 1 + 1 == 2\n"


def _pytest(args, cwd):
    """pytest in a subprocess at ``cwd``, with the repository importable (``-p scripts.…``) however pytest was run."""
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


def test_timeout_flag_by_how_the_plugin_is_present():
    assert gp.timeout_flags("entry-point", 60) == ["--timeout=60"]  # loaded by pytest itself: never -p it again
    assert gp.timeout_flags("module", 60.4) == ["-p", "pytest_timeout", "--timeout=60"]
    assert gp.timeout_flags(None, 60) == []
    with pytest.raises(ValueError, match="pytest_timeout kind"):
        gp.timeout_flags("yes", 60)


def test_stage_flags_run_a_test_under_this_interpreters_plugins(tmp_path):
    """What a test stage passes, with the plugins installed here (the dry run installs the GPU image's:
    requirements-gpu-check.txt), must run the test; the old ``-p pytest_timeout`` breaks under them."""
    probe = json.loads(subprocess.run([sys.executable, "-c", gp.PROBE], capture_output=True, text=True,
                                      timeout=60).stdout)
    (tmp_path / "test_tiny.py").write_text(TINY)
    flags = [*gp.verbose_flags(), *gp.timeout_flags(probe["pytest_timeout"], 60)]
    out = _pytest([*flags, "test_tiny.py"], tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "test_tiny.py::test_one PASSED" in out.stdout
    if probe["pytest_timeout"] == "entry-point":
        old = _pytest(["-p", "pytest_timeout", "--timeout=60", "test_tiny.py"], tmp_path)
        assert old.returncode == 3 and "already registered" in old.stderr + old.stdout


def test_the_probe_sees_an_installed_plugin():
    """The probe reads pytest's own entry points; the dry run's environment has pytest-timeout installed
    (make gpu-check installs requirements-gpu-check.txt), so the check runs with the GPU image's flag."""
    probe = json.loads(subprocess.run([sys.executable, "-c", gp.PROBE], capture_output=True, text=True,
                                      timeout=60).stdout)
    names = " ".join(probe["pytest_plugins"])
    assert ("pytest_timeout" in names) == (probe["pytest_timeout"] == "entry-point")


VERBOSE_LOG = """\
$ python -m pytest -v tests/sim_kernels/test_gpu.py
collected 4 items

tests/sim_kernels/test_gpu.py::test_a[native] PASSED                     [ 25%]
tests/sim_kernels/test_gpu.py::test_a[triton] FAILED                     [ 50%]
tests/sim_kernels/test_gpu.py::test_b SKIPPED (no CUDA device)           [ 75%]
tests/sim_kernels/test_gpu.py::test_c[shape0] """


def test_verbose_log_names_the_test_a_killed_stage_was_running():
    t = gp.parse_verbose_log(VERBOSE_LOG)
    assert (t["passed"], t["failed"], t["errors"], t["skipped"]) == (1, 1, 0, 1)
    assert t["running"] == "tests/sim_kernels/test_gpu.py::test_c[shape0]"
    done = gp.parse_verbose_log(VERBOSE_LOG + "PASSED [100%]\n\nFAILED tests/sim_kernels/test_gpu.py::test_a[triton]"
                                " - AssertionError\n0.52s call     tests/sim_kernels/test_gpu.py::test_a[native]\n")
    assert done["running"] is None and (done["passed"], done["failed"]) == (2, 1)  # summary lines not recounted


def test_fuzz_stage_plugin_turns_off_shrinking(tmp_path):
    (tmp_path / "test_h.py").write_text(
        "from hypothesis import Phase, given, settings, strategies as st\n"
        "@settings(max_examples=3, deadline=None)\n"
        "@given(st.integers())\n"
        "def test_h(x):\n"
        "    assert Phase.shrink not in settings.default.phases\n"
        "    assert test_h.hypothesis.inner_test  # still a Hypothesis test\n")
    out = _pytest(["-p", "scripts.gpu_check_hypothesis", "-q", "test_h.py"], tmp_path)
    assert out.returncode == 0, out.stdout[-2000:]
    without = _pytest(["-q", "test_h.py"], tmp_path)
    assert without.returncode == 1  # the assertion can fail: Hypothesis shrinks by default


def test_every_stage_name_is_known_and_runs_in_order():
    assert gpu_check.ALL_STAGES[:2] == ("env", "build")
    assert len(set(gpu_check.ALL_STAGES)) == len(gpu_check.ALL_STAGES)
    assert {"memcheck", "synccheck", "initcheck", "fuzz-gpu", "compile-check"} <= set(gpu_check.ALL_STAGES)
    with pytest.raises(SystemExit):
        gpu_check.main(["--stages", "env,nonsense", "--out", "/nonexistent/never-created"])
