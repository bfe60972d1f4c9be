"""Validation loss per module per epoch (thesis Fig. 4.2): rows with split="val" in the run's logs, computed
without touching the training random stream (resume stays exact), readable next to old logs."""
import csv
import json

import pytest
import torch

from sim_models.rundir.checkpoint import load_checkpoint
from sim_models.data.datasets import TensorAudioDataset
from sim_models.rundir.logs import FIELDS, RunLogger, read_metrics
from sim_models.rundir.checkpoint import CHECKPOINT_NAME
from sim_models.training.trainer import Trainer

from tests.sim_models.training.test_resume import _assert_same_state, _cfg, _data


def _val():
    return TensorAudioDataset(torch.randn(5, 2560, generator=torch.Generator().manual_seed(1)))  # 2 batches: 3 + 2


def _fit(run, *extra, val=True, resume=False):
    t = Trainer(_cfg("parallel", *extra), _data(), run, progress=False, tensorboard=False,
                val_dataset=_val() if val else None)
    return t, t.fit(resume=resume)


def test_val_rows_per_module_per_epoch(tmp_path):
    _fit(tmp_path)
    val = read_metrics(tmp_path, "val")
    assert [(r["epoch"], r["module"], r["step"]) for r in val] == [(0, 0, 3), (0, 1, 3), (0, 2, 3),
                                                                   (1, 0, 6), (1, 1, 6), (1, 2, 6)]
    assert all(r["lr"] is None and r["loss"] > 0 and 0 <= r["accuracy"] <= 1 for r in val)
    assert len(read_metrics(tmp_path, "train")) > 0
    jl = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {x["split"] for x in jl} == {"train", "val"}


def test_val_values_are_the_loss_on_the_val_set(tmp_path):
    """The logged numbers equal an independent evaluation: same weights, same fixed-seed draws, example-weighted mean."""
    trainer, _ = _fit(tmp_path, "train.epochs=1")
    last = read_metrics(tmp_path, "val")
    model = trainer.model
    g = torch.Generator().manual_seed(trainer.cfg.train.seed + 7_777_777)
    x = _val().audio
    sums = torch.zeros(3)
    with torch.no_grad():
        for chunk in (x[:3], x[3:]):
            sums += torch.stack([r.loss for r in model.losses_for(chunk, [0, 1, 2], g)]) * len(chunk)
    torch.testing.assert_close(torch.tensor([r["loss"] for r in last]), sums / 5)


def test_validation_leaves_training_unchanged(tmp_path):
    """With or without a validation set, the same parameters (the val draws use their own generator)."""
    _fit(tmp_path / "with")
    _fit(tmp_path / "without", val=False)
    a, b = load_checkpoint(tmp_path / "with" / CHECKPOINT_NAME), load_checkpoint(tmp_path / "without" / CHECKPOINT_NAME)
    _assert_same_state(a, b)
    assert read_metrics(tmp_path / "with", "train") == read_metrics(tmp_path / "without", "train")
    assert read_metrics(tmp_path / "without", "val") == []


@pytest.mark.parametrize("stop_at", [3, 4], ids=["epoch-end", "mid-epoch"])
def test_resume_with_validation_is_exact(tmp_path, stop_at):
    _fit(tmp_path / "full")
    _fit(tmp_path / "part", f"train.max_steps={stop_at}")
    _fit(tmp_path / "part", resume=True)
    _assert_same_state(load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME),
                       load_checkpoint(tmp_path / "part" / CHECKPOINT_NAME))
    assert read_metrics(tmp_path / "part", None) == read_metrics(tmp_path / "full", None)  # each row once


def test_sequential_mode_validates_the_unit_in_training(tmp_path):
    t = Trainer(_cfg("sequential", "train.epochs=1"), _data(), tmp_path, progress=False, tensorboard=False,
                val_dataset=_val())
    t.fit()
    assert [(r["unit"], r["module"]) for r in read_metrics(tmp_path, "val")] == [(0, 0), (1, 1), (2, 2)]


def test_train_validate_false_turns_it_off(tmp_path):
    _fit(tmp_path, "train.validate=false")
    assert read_metrics(tmp_path, "val") == []


def test_an_old_metrics_csv_gets_the_split_column(tmp_path):
    old = "step,unit,epoch,module,loss,nce,kl,accuracy,lr\r\n1,0,0,0,2.0,2.0,0.5,0.1,0.001\r\n"
    (tmp_path / "metrics.csv").write_bytes(old.encode())
    assert read_metrics(tmp_path, "train")[0]["loss"] == 2.0  # old file: rows read as "train"
    log = RunLogger(tmp_path, tensorboard=False)
    log.log({"step": 2, "unit": 0, "epoch": 0, "module": 0, "loss": 1.0, "nce": 1.0, "kl": 0.0, "accuracy": 0.5,
             "lr": None, "split": "val"})
    log.close()
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(FIELDS)
    assert [r["split"] for r in rows] == [None, "val"]
    assert [r["split"] for r in read_metrics(tmp_path, None)] == ["train", "val"]
