"""A run folder made by the code before the package layout (one job per folder) still loads, resumes, evaluates
and reports with this code.

The old code is the last commit before the layout (``OLD_COMMIT``), taken from this repository's history with
``git archive`` into a temporary folder; it trains 1 epoch of a shrunk ``tiny`` there (its own `sim train`, in a
subprocess, sim_kernels from this checkout). Skipped where git or that commit is not available (a shallow clone).
"""
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from sim_models.cli import main
from sim_models.rundir.checkpoint import CHECKPOINT_NAME, load_checkpoint
from sim_models.rundir.load import load_run
from sim_models.rundir.logs import read_metrics
from tests.sim_models.analysis.test_analysis_run import _report_args, make_toy_syllable_data
from tests.sim_models.rundir.test_run_info import SHRINK

REPO = Path(__file__).resolve().parents[3]
OLD_COMMIT = "5b04df6f631fd1f619ee53e5578362924a9fd5a6"  # the flat sim_models/ (cli.py, trainer.py, distributed/, ...)
SMALL = [o for o in SHRINK if not o.startswith("train.max_steps")]  # whole epochs


def _old_code(dest: Path) -> Path:
    """sim_models as it was at OLD_COMMIT, extracted under ``dest``; skips the test when git cannot give it."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    archive = dest / "old.tar"
    with open(archive, "wb") as f:
        p = subprocess.run(["git", "-C", str(REPO), "archive", OLD_COMMIT, "sim_models"], stdout=f,
                           stderr=subprocess.PIPE)
    if p.returncode != 0:
        pytest.skip(f"commit {OLD_COMMIT[:7]} is not in this clone's history: {p.stderr.decode().strip()}")
    with tarfile.open(archive) as t:
        t.extractall(dest / "old", filter="data")
    assert (dest / "old" / "sim_models" / "trainer.py").is_file()  # the old layout indeed
    return dest / "old"


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("old-run")
    old = _old_code(root)
    data = make_toy_syllable_data(root / "data")
    run = root / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(old), str(REPO)]), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", "import sys, sim_models.cli as c; assert 'old' in c.__file__; sys.exit(c.main())",
           "train", "--config", "tiny", "--data", str(data), "--out", str(run), "--epochs", "1", "--no-progress",
           "--threads", "1", *SMALL]
    p = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return {"run": run, "data": data, "steps": load_checkpoint(run / CHECKPOINT_NAME)["position"]["step"]}


def test_an_old_run_loads(old_run):
    run = load_run(old_run["run"])
    assert run.steps == old_run["steps"] > 0 and run.cfg.name == "tiny"
    assert run.model.num_stages == 3 and not run.model.training


def test_an_old_run_resumes_and_its_logs_continue(old_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(old_run["run"], run)
    before = read_metrics(run, None)
    assert main(["train", "--config", "tiny", "--data", str(old_run["data"]), "--out", str(run), "--resume",
                 "--epochs", "2", "--no-progress", *SMALL]) == 0
    after = load_checkpoint(run / CHECKPOINT_NAME)
    assert after["position"]["step"] == 2 * old_run["steps"] and after["position"]["done"]
    rows = read_metrics(run, None)
    assert rows[:len(before)] == before and max(r["step"] for r in rows) == 2 * old_run["steps"]


def test_an_old_run_evaluates_and_reports(old_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(old_run["run"], run)
    assert main(["eval", "--run", str(run), "--seeds", "1", "--probe-epochs", "2"]) == 0  # data from run_info.json
    assert (run / "eval.json").is_file()
    args = _report_args([run], old_run["data"])
    assert args.func(args) == 0
    assert "## Few-label generalisation" in (run / "report.md").read_text() and (run / "report.html").is_file()
    state = load_checkpoint(run / CHECKPOINT_NAME)
    torch.testing.assert_close(load_run(run).model.state_dict(), state["model"])
