"""train.snapshot_every: the weights at epoch ends in RUN_DIR/snapshots/, the same after a resume."""
import pytest
import torch

from sim_models.config import apply_overrides, get_config
from sim_models.data.datasets import TensorAudioDataset
from sim_models.model.greedy import build_model
from sim_models.rundir.checkpoint import CHECKPOINT_NAME, load_checkpoint
from sim_models.rundir.snapshots import SNAPSHOT_DIR, list_snapshots, load_snapshot_model, snapshot_path
from sim_models.training.trainer import Trainer


def _cfg(*extra):
    return apply_overrides(get_config("tiny"), [
        "model.channels=[8,8,8,8,8]", "model.ar_hidden=6", "data.length=2560", "train.batch_size=3",
        "train.epochs=3", "train.checkpoint_every=2", "train.snapshot_every=1", *extra])


def _data():
    return TensorAudioDataset(torch.randn(10, 2560, generator=torch.Generator().manual_seed(0)))  # 3 batches / epoch


def _fit(run_dir, *extra, resume=False):
    return Trainer(_cfg(*extra), _data(), run_dir, progress=False, tensorboard=False).fit(resume=resume)


def _weights(path) -> dict:
    return load_checkpoint(path)["model"]


def _assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=lambda s: f"{k}: {s}")


def test_every_epoch_end_and_the_initialisation(tmp_path):
    _fit(tmp_path / "run")
    snaps = list_snapshots(tmp_path / "run")
    assert [(s.epoch, s.unit) for s in snaps] == [(0, None), (1, None), (2, None), (3, None)]
    _assert_same_weights(_weights(snaps[0].path), build_model(_cfg()).state_dict())  # before the first step
    _assert_same_weights(_weights(snaps[-1].path), _weights(tmp_path / "run" / CHECKPOINT_NAME))  # the end
    assert load_checkpoint(snaps[2].path)["step"] == 6  # 3 batches per epoch
    first, second = _weights(snaps[1].path), _weights(snaps[2].path)
    assert any(not torch.equal(first[k], second[k]) for k in first)  # the weights moved between epochs


def test_every_nth_epoch_keeps_the_last(tmp_path):
    _fit(tmp_path / "run", "train.snapshot_every=2")
    assert [s.epoch for s in list_snapshots(tmp_path / "run")] == [0, 2, 3]


def test_none_by_default(tmp_path):
    _fit(tmp_path / "run", "train.snapshot_every=0")
    assert not (tmp_path / "run" / SNAPSHOT_DIR).exists() and list_snapshots(tmp_path / "run") == []


def test_sequential_mode_names_the_unit(tmp_path):
    _fit(tmp_path / "run", "train.mode=sequential", "train.epochs=1")
    snaps = list_snapshots(tmp_path / "run")
    units = sorted({s.unit for s in snaps})
    assert units == list(range(len(units))) and len(units) > 1
    assert [(s.unit, s.epoch) for s in snaps if s.unit == 0] == [(0, 0), (0, 1)]
    assert all(s.epoch == 1 for s in snaps if s.unit)
    assert snaps[-1].path.name == f"unit{units[-1]}_epoch_0001.pt"


def test_a_resumed_run_writes_the_same_snapshots(tmp_path):
    _fit(tmp_path / "full")
    _fit(tmp_path / "part", "train.max_steps=4")  # stops in epoch 2
    assert [s.epoch for s in list_snapshots(tmp_path / "part")] == [0, 1]
    _fit(tmp_path / "part", resume=True)
    full, part = list_snapshots(tmp_path / "full"), list_snapshots(tmp_path / "part")
    assert [s.epoch for s in part] == [s.epoch for s in full]
    for a, b in zip(full, part):
        _assert_same_weights(_weights(a.path), _weights(b.path))


def test_load_snapshot_model_is_frozen_with_the_snapshot_weights(tmp_path):
    _fit(tmp_path / "run", "train.epochs=1")
    snap = list_snapshots(tmp_path / "run")[-1]
    model = load_snapshot_model(tmp_path / "run", snap)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    _assert_same_weights(model.state_dict(), _weights(snap.path))


def test_other_files_are_ignored_and_bad_arguments_refused(tmp_path):
    folder = tmp_path / "run" / SNAPSHOT_DIR
    folder.mkdir(parents=True)
    (folder / "notes.pt").write_bytes(b"")
    (folder / "epoch_12.pt.1234.tmp").write_bytes(b"")
    assert list_snapshots(tmp_path / "run") == []
    assert snapshot_path(tmp_path, 7, unit=2).name == "unit2_epoch_0007.pt"
    with pytest.raises(ValueError, match="epoch"):
        snapshot_path(tmp_path, -1)
    with pytest.raises(ValueError, match="train.snapshot_every"):
        _cfg("train.snapshot_every=-1")
