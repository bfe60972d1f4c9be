"""Checkpoints are atomic and --resume continues exactly: same parameters as an uninterrupted run."""
import os

import pytest
import torch

from sim_models.rundir.checkpoint import load_checkpoint, save_checkpoint
from sim_models.config import apply_overrides, get_config
from sim_models.data.datasets import TensorAudioDataset
from sim_models.rundir.checkpoint import CHECKPOINT_NAME
from sim_models.training.trainer import Trainer


def _cfg(mode, *extra):
    return apply_overrides(get_config("tiny"), [
        "model.channels=[8,8,8,8,8]", "model.ar_hidden=6", "data.length=2560", "train.batch_size=3",
        "train.epochs=2", "train.lr_decay=0.9", "train.checkpoint_every=2", f"train.mode={mode}", *extra])


def _data():
    return TensorAudioDataset(torch.randn(10, 2560, generator=torch.Generator().manual_seed(0)))  # 3 batches / epoch


def _assert_same_state(a: dict, b: dict):
    assert a["position"] == b["position"]
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=lambda s: f"{k}: {s}")
    for oa, ob in zip(a["optimizers"], b["optimizers"]):
        for pid in oa["state"]:
            for name in ("exp_avg", "exp_avg_sq", "step"):
                torch.testing.assert_close(oa["state"][pid][name], ob["state"][pid][name], rtol=0, atol=0)
    assert a["schedulers"] == b["schedulers"]
    assert torch.equal(a["generator"], b["generator"])


@pytest.mark.parametrize("mode, stop_at", [("parallel", 4), ("parallel", 3), ("sequential", 8)],
                         ids=["parallel-mid-epoch", "parallel-epoch-end", "sequential-unit-3"])
def test_resume_matches_uninterrupted_run(tmp_path, mode, stop_at):
    full = Trainer(_cfg(mode), _data(), tmp_path / "full", progress=False, tensorboard=False)
    s_full = full.fit()
    assert not s_full["stopped_early"]
    assert s_full["steps"] == (6 if mode == "parallel" else 18)

    part = Trainer(_cfg(mode, f"train.max_steps={stop_at}"), _data(), tmp_path / "part", progress=False, tensorboard=False)
    s_part = part.fit()
    assert s_part["stopped_early"] and s_part["steps"] == stop_at
    resumed = Trainer(_cfg(mode), _data(), tmp_path / "part", progress=False, tensorboard=False)
    s_res = resumed.fit(resume=True)
    assert s_res["steps"] == s_full["steps"] and s_res["steps_this_run"] == s_full["steps"] - stop_at

    _assert_same_state(load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME), load_checkpoint(tmp_path / "part" / CHECKPOINT_NAME))


def test_an_interrupted_run_differs_without_resume(tmp_path):
    """The control for the test above: restarting from scratch (no resume) after the stop does not
    continue, so the comparison can fail."""
    full = Trainer(_cfg("parallel"), _data(), tmp_path / "full", progress=False, tensorboard=False)
    full.fit()
    part = Trainer(_cfg("parallel", "train.max_steps=4"), _data(), tmp_path / "part", progress=False, tensorboard=False)
    part.fit()
    again = Trainer(_cfg("parallel", "train.epochs=1"), _data(), tmp_path / "part", progress=False, tensorboard=False)
    again.fit()  # a fresh start: 3 steps, not the remaining 2
    a, b = load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME), load_checkpoint(tmp_path / "part" / CHECKPOINT_NAME)
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_run_folder_contents(tmp_path):
    Trainer(_cfg("parallel"), _data(), tmp_path, progress=False, tensorboard=False).fit()
    for f in ("config.yaml", "checkpoint.pt", "metrics.csv", "metrics.jsonl"):
        assert (tmp_path / f).is_file(), f
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,unit,epoch,module,loss,nce,kl,accuracy,lr,split"
    assert len(lines) > 1
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_resume_without_checkpoint_names_it(tmp_path):
    t = Trainer(_cfg("parallel"), _data(), tmp_path, progress=False, tensorboard=False)
    with pytest.raises(FileNotFoundError, match="checkpoint.pt"):
        t.fit(resume=True)


def test_too_short_audio_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="prediction_steps"):
        Trainer(_cfg("parallel", "data.length=1000"), TensorAudioDataset(torch.randn(4, 1000)), tmp_path)


def test_checkpoint_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"w": torch.ones(3), "meta": {"step": 1}}, path)

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"w": torch.zeros(3)}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    torch.testing.assert_close(state["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["ck.pt"]


class Evil:  # a pickled object, which weights_only=True refuses
    pass


def test_checkpoint_loads_with_weights_only(tmp_path):
    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(RuntimeError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")


def test_resume_with_more_epochs_continues_training(tmp_path):
    """Parallel mode: a finished 1-epoch run resumed with 2 epochs equals a 2-epoch run."""
    Trainer(_cfg("parallel"), _data(), tmp_path / "full", progress=False, tensorboard=False).fit()
    Trainer(_cfg("parallel", "train.epochs=1"), _data(), tmp_path / "part", progress=False, tensorboard=False).fit()
    s = Trainer(_cfg("parallel"), _data(), tmp_path / "part", progress=False, tensorboard=False).fit(resume=True)
    assert s["steps_this_run"] == 3
    _assert_same_state(load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME), load_checkpoint(tmp_path / "part" / CHECKPOINT_NAME))


def test_max_steps_reached_is_not_exceeded_on_resume(tmp_path):
    cfg = _cfg("parallel", "train.max_steps=2")
    assert Trainer(cfg, _data(), tmp_path, progress=False, tensorboard=False).fit()["steps"] == 2
    s = Trainer(cfg, _data(), tmp_path, progress=False, tensorboard=False).fit(resume=True)
    assert s["steps"] == 2 and s["steps_this_run"] == 0 and s["stopped_early"]


def test_tensorboard_gets_the_scalars_when_installed(tmp_path, monkeypatch):
    """tensorboard is optional; a stand-in SummaryWriter checks what the logger sends it."""
    import sys
    import types

    calls = []

    class Writer:
        def __init__(self, log_dir):
            calls.append(("init", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    Trainer(_cfg("parallel", "train.epochs=1"), _data(), tmp_path, progress=False).fit()
    tags = {c[0] for c in calls}
    assert ("init", str(tmp_path / "tensorboard")) in calls and ("close",) in calls
    assert {"module0/loss", "module1/nce", "module2/accuracy", "module0/kl", "module0/lr"} <= tags
