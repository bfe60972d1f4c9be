"""Crash safety of `sim train`.

* SIGKILL mid-epoch and during a checkpoint write, then ``--resume``: the checkpoint on disk always
  loads with ``torch.load(weights_only=True)``, stray temp files are removed, and the resumed run ends
  with the same parameters, optimiser state and logs as runs that were never killed.
* Clear refusals before training starts: a run folder that cannot be a folder, is not writable or sits
  on a full disk; a config (file or override) with an unknown key.
* A failed run (an exception in a step, a NaN loss) says where it stopped and which checkpoint to
  resume from, and never checkpoints a diverged state.

The kill tests run the real CLI (``python -m sim_models.cli train``) in subprocesses, stop them at
exact points with the test hooks of sim_models/util/fault_injection.py (SIM_TEST_PAUSE_AT) and send SIGKILL
from here. The shrunk "tiny" config runs 2 epochs x 3 steps on 10 noise files; checkpoints are
written at steps 2, 3 (epoch end), 4, 6 (epoch end; a checkpoint_every step that ends an epoch is written
once, after the epoch's validation rows) and at the end.
"""
import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sim_models.rundir.checkpoint import load_checkpoint
from sim_models.cli import main
from sim_models.config import get_config, load_config
from sim_models.rundir.safety import FAILURE_NAME, RunDirError, TrainingFailed, trim_logs
from sim_models.rundir.checkpoint import CHECKPOINT_NAME
from sim_models.training.trainer import Trainer

from tests.sim_models.training.test_resume import _assert_same_state, _cfg, _data

REPO = Path(__file__).resolve().parents[3]
SHRINK = ["model.channels=[8,8,8,8,8]", "model.ar_hidden=6", "data.length=2560", "train.batch_size=3",
          "train.epochs=2", "train.lr_decay=0.9", "train.checkpoint_every=2", "train.log_every=1"]


# -- helpers -------------------------------------------------------------------------------------
def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIM_TEST_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _train_cmd(data, out, *flags) -> list:
    return [sys.executable, "-m", "sim_models.cli", "train", "--config", "tiny", "--data", str(data),
            "--out", str(out), "--threads", "1", "--no-progress", *flags, *SHRINK]


def _ok(cmd) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{' '.join(cmd)}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def _kill_at(cmd, pause: str, tmp_path: Path):
    """Start ``cmd`` with the pause hook at ``pause`` and SIGKILL it once it has paused there."""
    marker = tmp_path / f"paused-{pause.replace(':', '-')}"
    out_path = tmp_path / f"killed-{pause.replace(':', '-')}.log"
    with open(out_path, "w") as out:
        p = subprocess.Popen(cmd, env=_env(SIM_TEST_PAUSE_AT=pause, SIM_TEST_PAUSE_MARKER=marker),
                             stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while not marker.exists():
                if p.poll() is not None:
                    pytest.fail(f"the run ended (code {p.returncode}) before pausing at {pause}:\n{out_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"the run did not reach {pause} in 180 s:\n{out_path.read_text()}")
                time.sleep(0.05)
            os.kill(p.pid, signal.SIGKILL)
            assert p.wait(timeout=60) == -signal.SIGKILL
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def _log_rows(run: Path) -> tuple:
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    return rows, (run / "metrics.jsonl").read_text().splitlines()


@pytest.fixture(scope="module")
def wav_data(tmp_path_factory):
    """10 files of 2560 samples of noise, float WAV (read back bit-exactly): 3 batches of 3 per epoch."""
    d = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    for i in range(10):
        sf.write(str(d / f"u{i:02d}.wav"), (0.1 * rng.standard_normal(2560)).astype(np.float32), 16000, subtype="FLOAT")
    return d


@pytest.fixture(scope="module")
def reference_run(wav_data, tmp_path_factory):
    """The same run, never interrupted."""
    out = tmp_path_factory.mktemp("reference") / "run"
    _ok(_train_cmd(wav_data, out))
    return out


# -- SIGKILL and resume --------------------------------------------------------------------------
def test_sigkill_mid_epoch_then_resume(tmp_path, wav_data, reference_run):
    run = tmp_path / "run"
    _kill_at(_train_cmd(wav_data, run), "step:5", tmp_path)  # step 5 applied, not yet logged or checkpointed
    on_disk = torch.load(run / CHECKPOINT_NAME, weights_only=True)
    assert on_disk["position"] == {"unit": 0, "epoch": 1, "batch": 1, "step": 4, "done": False}  # mid-epoch
    assert not list(run.glob("*.tmp"))
    rows, _ = _log_rows(run)
    assert {int(r[0]) for r in rows[1:]} == {1, 2, 3, 4}  # logs flushed up to the checkpoint, step 5 never written
    ref = load_checkpoint(reference_run / CHECKPOINT_NAME)
    assert any(not torch.equal(on_disk["model"][k], ref["model"][k]) for k in ref["model"])  # the check can fail

    control = tmp_path / "control"  # the same checkpoint, resumed by a run that is never interrupted
    shutil.copytree(run, control)
    _ok(_train_cmd(wav_data, run, "--resume"))
    _ok(_train_cmd(wav_data, control, "--resume"))
    final = load_checkpoint(run / CHECKPOINT_NAME)
    assert final["position"] == {"unit": 0, "epoch": 2, "batch": 0, "step": 6, "done": True}
    _assert_same_state(final, load_checkpoint(control / CHECKPOINT_NAME))
    _assert_same_state(final, ref)
    assert _log_rows(run) == _log_rows(reference_run)  # each step logged once, same values


def test_sigkill_during_checkpoint_write_then_resume(tmp_path, wav_data, reference_run):
    run = tmp_path / "run"
    # the 3rd write (step 4): the new state is in the fsynced temp file, os.replace not yet done
    _kill_at(_train_cmd(wav_data, run), "checkpoint:3", tmp_path)
    temps = list(run.glob(CHECKPOINT_NAME + ".*.tmp"))
    assert len(temps) == 1, sorted(os.listdir(run))  # the kill did land inside the write
    on_disk = torch.load(run / CHECKPOINT_NAME, weights_only=True)  # the previous checkpoint, whole
    assert on_disk["position"] == {"unit": 0, "epoch": 1, "batch": 0, "step": 3, "done": False}

    _ok(_train_cmd(wav_data, run, "--resume"))
    assert not list(run.glob("*.tmp"))  # the stray temp file is removed on resume
    final = load_checkpoint(run / CHECKPOINT_NAME)
    assert final["position"]["step"] == 6 and final["position"]["done"]
    _assert_same_state(final, load_checkpoint(reference_run / CHECKPOINT_NAME))
    assert _log_rows(run) == _log_rows(reference_run)


# -- refusals before training --------------------------------------------------------------------
def _train_args(data, out, *more):
    return ["train", "--config", "tiny", "--data", str(data), "--out", str(out), "--no-progress", *SHRINK, *more]


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file"])
def test_run_folder_that_cannot_be_a_folder(tmp_path, wav_data, where):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "run" if where == "under-a-file" else blocker
    with pytest.raises(RunDirError, match="is a file, not a folder") as e:
        main(_train_args(wav_data, out))
    assert str(out if where == "is-a-file" else blocker) in str(e.value)
    assert blocker.read_text() == "not a folder"


def test_unwritable_run_folder(tmp_path, wav_data, monkeypatch):
    """Simulated (root ignores permission bits): the write probe fails as on a read-only mount."""
    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(RunDirError, match=r"is not writable: Read-only file system") as e:
        main(_train_args(wav_data, tmp_path / "run"))
    assert str(tmp_path / "run") in str(e.value)


def test_full_disk_is_refused_before_training(tmp_path, wav_data, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(2**30, 2**30 - 2**20, 2**20))  # 1 MiB free
    run = tmp_path / "run"
    with pytest.raises(RunDirError, match=r"not enough free space .* 1\.0 MiB free .* needs about 9\.\d MiB") as e:
        main(_train_args(wav_data, run))
    assert str(run) in str(e.value)
    assert sorted(os.listdir(run)) == []  # no step, no checkpoint, no logs, no config, no probe left
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(2**30, 0, 2**30))
    assert main(_train_args(wav_data, run, "train.epochs=1")) == 0  # the control: with room it trains


def test_config_file_with_unknown_key_is_refused_by_the_cli(tmp_path, wav_data):
    cfg = tmp_path / "my.yaml"
    d = get_config("tiny").to_dict()
    d["train"]["learning_rate"] = 1e-3  # should be train.lr
    cfg.write_text(json.dumps(d))  # JSON is YAML
    run = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "sim_models.cli", "train", "--config", str(cfg), "--data", str(wav_data),
                        "--out", str(run)], env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert "learning_rate" in last and str(cfg) in last and "config.train" in last, p.stderr
    assert not run.exists()


@pytest.mark.parametrize("content, names", [
    ({"model": {"chanels": [8] * 5}}, ["config.model", "chanels"]),
    ({"trian": {"lr": 1}}, ["unknown sections", "trian"]),
    ({"train": [1, 2]}, ["config.train must be a mapping"]),
], ids=["unknown-key", "unknown-section", "not-a-mapping"])
def test_bad_config_files_name_file_and_key(tmp_path, content, names):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError) as e:
        load_config(path)
    for n in [str(path), *names]:
        assert n in str(e.value)


def test_unknown_override_and_missing_config_file(tmp_path, wav_data):
    with pytest.raises(ValueError, match="config.train has no key 'lr_dcay'"):
        main(_train_args(wav_data, tmp_path / "run", "train.lr_dcay=0.5"))
    with pytest.raises(FileNotFoundError, match="config file not found: .*nope.yaml"):
        get_config(str(tmp_path / "nope.yaml"))
    assert not (tmp_path / "run").exists()


# -- a failed run says where it stopped ----------------------------------------------------------
def test_exception_in_a_step_says_where_it_stopped(tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_step = Trainer._step

    def step_that_fails_in_step_5(self, *a):
        if self.pos["step"] == 4:
            raise RuntimeError("boom in step 5")
        return real_step(self, *a)

    monkeypatch.setattr(Trainer, "_step", step_that_fails_in_step_5)
    with pytest.raises(TrainingFailed) as e:
        Trainer(_cfg("parallel"), _data(), run, progress=False, tensorboard=False).fit()
    msg = str(e.value)
    assert "after step 4 (unit 0, epoch 1, batch 1; counted from 0)" in msg and "RuntimeError: boom in step 5" in msg
    assert f"last good checkpoint: {run / CHECKPOINT_NAME} (step 4)" in msg and "--resume" in msg
    assert isinstance(e.value.__cause__, RuntimeError)
    record = json.loads((run / FAILURE_NAME).read_text())
    assert record["position"] == {"unit": 0, "epoch": 1, "batch": 1, "step": 4}
    assert record["last_checkpoint"] == str(run / CHECKPOINT_NAME) and record["last_checkpoint_step"] == 4
    assert load_checkpoint(run / CHECKPOINT_NAME)["position"]["step"] == 4

    monkeypatch.setattr(Trainer, "_step", real_step)  # fixed: resume finishes and equals a run never stopped
    Trainer(_cfg("parallel"), _data(), run, progress=False, tensorboard=False).fit(resume=True)
    assert not (run / FAILURE_NAME).exists()
    Trainer(_cfg("parallel"), _data(), tmp_path / "full", progress=False, tensorboard=False).fit()
    _assert_same_state(load_checkpoint(run / CHECKPOINT_NAME), load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME))


class _NaNFromCall:
    """The dataset of _data(), but every item from the 13th read on is NaN: step 5 (batch 3) diverges."""

    def __init__(self, base):
        self.base, self.calls = base, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.calls += 1
        x = self.base[i]
        return x * float("nan") if self.calls > 12 else x


def test_nan_loss_stops_before_a_checkpoint_is_overwritten(tmp_path):
    run = tmp_path / "run"
    # log_every=100: the NaN is caught by the check before the step-6 checkpoint, not by a log step
    t = Trainer(_cfg("parallel", "train.log_every=100"), _NaNFromCall(_data()), run, progress=False, tensorboard=False)
    with pytest.raises(TrainingFailed, match=r"(?s)after step 6 .*FloatingPointError: the loss became NaN or "
                                             r"infinite at step 5.*checkpoint.pt \(step 4\)"):
        t.fit()
    assert not all(torch.isfinite(p).all() for p in t.model.parameters())  # the state in memory did diverge
    saved = load_checkpoint(run / CHECKPOINT_NAME)
    assert saved["position"]["step"] == 4
    assert all(torch.isfinite(v).all() for v in saved["model"].values())
    assert json.loads((run / FAILURE_NAME).read_text())["error"] == "FloatingPointError"


def test_no_checkpoint_yet_is_said_too(tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "_step", lambda self, *a: (_ for _ in ()).throw(MemoryError("out of memory")))
    with pytest.raises(TrainingFailed, match="after step 0 .*MemoryError: out of memory\n  no checkpoint was written"):
        Trainer(_cfg("parallel"), _data(), tmp_path, progress=False, tensorboard=False).fit()


# -- log trimming on resume ----------------------------------------------------------------------
def test_trim_logs_drops_rows_after_the_checkpoint_and_a_cut_line(tmp_path):
    header = "step,unit,epoch,module,loss,nce,kl,accuracy,lr\r\n"
    rows = [f"{s},0,0,{m},1.0,1.0,0.0,0.5,0.002\r\n" for s in range(1, 7) for m in range(2)]
    (tmp_path / "metrics.csv").write_bytes((header + "".join(rows) + "7,0,0,0,1.0,1.").encode())
    jl = [json.dumps({"step": s, "module": m}) + "\n" for s in range(1, 7) for m in range(2)]
    (tmp_path / "metrics.jsonl").write_text("".join(jl) + '{"step": 7, "mod')
    trim_logs(tmp_path, 4)
    assert (tmp_path / "metrics.csv").read_bytes().decode() == header + "".join(rows[:8])
    assert (tmp_path / "metrics.jsonl").read_text() == "".join(jl[:8])
    trim_logs(tmp_path, 4)  # idempotent
    assert (tmp_path / "metrics.jsonl").read_text() == "".join(jl[:8])
