"""The per-unit KL trajectory over a run's snapshots, its movement and the settling epoch."""
import json

import numpy as np
import pytest
import torch

from sim_models.analysis.kl_trajectory import (kl_movement, plot_kl_trajectory, settling_epoch, trajectory_table,
                                               unit_kl_trajectory)
from sim_models.analysis.posterior_usage import posterior_usage
from sim_models.cli.parser import main
from sim_models.config import apply_overrides, get_config
from sim_models.data.datasets import SyllableDataset, TensorAudioDataset
from sim_models.rundir.snapshots import list_snapshots, load_snapshot_model
from sim_models.training.trainer import Trainer


def _trajectory(epochs, *modules):
    """modules: one (E, C) array of per-unit KL each."""
    return {"epochs": list(epochs),
            "modules": [{"module": m, "width": len(kl[0]), "kl": [list(map(float, r)) for r in kl],
                         "active_kl": [int((np.asarray(r) > 0.01).sum()) for r in kl],
                         "active_variance": [0] * len(kl)} for m, kl in enumerate(modules)]}


def test_movement_is_the_relative_l1_change_over_the_window():
    kl = [[1.0, 1.0], [2.0, 0.5], [2.0, 0.0]]
    moves = kl_movement(_trajectory([0, 1, 2], kl), window=1)[0]
    assert moves == [(1, pytest.approx(1.5 / 2.0)), (2, pytest.approx(0.5 / 2.5))]
    assert kl_movement(_trajectory([0, 1, 2], kl), window=2)[0] == [(2, pytest.approx(2.0 / 2.0))]
    # units that trade places count, although the total stays the same
    assert kl_movement(_trajectory([0, 1], [[1.0, 0.0], [0.0, 1.0]]), window=1)[0] == [(1, pytest.approx(2.0))]


def test_settling_needs_every_later_epoch_and_every_module_quiet():
    still = np.ones((8, 3))
    moving = np.ones((8, 3)) * np.arange(1, 9)[:, None] ** 2  # grows at every epoch
    late = np.ones((8, 3))
    late[6:] = 3.0  # quiet, then a jump at epoch 6 (a module leaving chance late)
    assert settling_epoch(_trajectory(range(8), still), window=1) == 1
    assert settling_epoch(_trajectory(range(8), moving), window=1) is None
    assert settling_epoch(_trajectory(range(8), late), window=1) == 7  # the quiet start does not count
    assert settling_epoch(_trajectory(range(8), still, late), window=1) == 7  # the slowest module decides
    decaying = 1.0 + 0.5 ** np.arange(8)[:, None] * np.ones((8, 2))  # movement halves each epoch
    assert settling_epoch(_trajectory(range(8), decaying), window=1, tolerance=0.05) == 5
    assert settling_epoch(_trajectory(range(3), still), window=5) is None  # nothing measured yet


def test_snapshots_every_other_epoch_use_the_matching_window():
    kl = np.ones((4, 2)) * np.array([1.0, 1.0, 1.02, 1.02])[:, None]
    traj = _trajectory([0, 2, 4, 6], kl)
    assert [e for e, _ in kl_movement(traj, window=2)[0]] == [2, 4, 6]
    assert kl_movement(traj, window=1)[0] == []
    assert settling_epoch(traj, window=2) == 2


def test_bad_arguments_are_refused():
    traj = _trajectory(range(3), np.ones((3, 2)))
    with pytest.raises(ValueError, match="window"):
        kl_movement(traj, window=0)
    with pytest.raises(ValueError, match="tolerance"):
        settling_epoch(traj, tolerance=0)


def test_table_and_figure(tmp_path):
    traj = _trajectory(range(7), np.linspace(0.001, 1.0, 7)[:, None] * np.ones((7, 4)),
                       np.full((7, 2), 0.001))
    header, rows = trajectory_table(traj, window=5)
    assert header[:4] == ["epoch", "m1 KL (nats)", "m1 active", "m1 movement"] and len(rows) == 7
    assert rows[0][3] == "–" and rows[6][2] == "4/4" and rows[6][5] == "0/2"
    path = plot_kl_trajectory(traj, tmp_path / "kl.png", window=5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def _cfg(*extra):
    return apply_overrides(get_config("tiny"), [
        "model.channels=[8,8,8,8,8]", "model.ar_hidden=6", "data.length=2560", "train.batch_size=3",
        "train.epochs=2", "train.snapshot_every=1", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("kl") / "run"
    data = TensorAudioDataset(torch.randn(10, 2560, generator=torch.Generator().manual_seed(0)))
    Trainer(_cfg(), data, run, progress=False, tensorboard=False).fit()
    return run


def test_trajectory_is_posterior_usage_of_each_snapshot(trained):
    audio = torch.randn(5, 2560, generator=torch.Generator().manual_seed(1))
    traj = unit_kl_trajectory(trained, audio, max_utterances=4)
    snaps = list_snapshots(trained)
    assert traj["epochs"] == [0, 1, 2] == [s.epoch for s in snaps]
    for i, snap in enumerate(snaps):
        rows = posterior_usage(load_snapshot_model(trained, snap), audio, max_utterances=4)
        expected = [(m, r) for m, r in enumerate(rows) if r["probabilistic"]]
        assert [mod["module"] for mod in traj["modules"]] == [m for m, _ in expected] and expected
        for mod, (_, r) in zip(traj["modules"], expected):
            torch.testing.assert_close(torch.tensor(mod["kl"][i]), torch.tensor(r["kl_per_dim"]))
            assert mod["active_kl"][i] == r["active_kl"] and mod["width"] == r["width"]
    assert traj["modules"][0]["kl"][0] != traj["modules"][0]["kl"][2]  # training moved the posteriors


def test_runs_without_snapshots_or_posteriors_are_refused(tmp_path):
    data = TensorAudioDataset(torch.randn(10, 2560, generator=torch.Generator().manual_seed(0)))
    Trainer(_cfg("train.snapshot_every=0", "train.epochs=1"), data, tmp_path / "plain", progress=False,
            tensorboard=False).fit()
    with pytest.raises(FileNotFoundError, match="snapshot_every"):
        unit_kl_trajectory(tmp_path / "plain", torch.randn(2, 2560))
    Trainer(_cfg("model.beta=0", "model.probabilistic=false", "train.epochs=1"), data, tmp_path / "gim",
            progress=False, tensorboard=False).fit()
    with pytest.raises(ValueError, match="no probabilistic module"):
        unit_kl_trajectory(tmp_path / "gim", torch.randn(2, 2560))


def test_cli_writes_the_json_and_the_figure(syllable_data, tmp_path, capsys):
    cfg = _cfg("train.epochs=6")
    train = SyllableDataset(syllable_data, "train", cfg.data.sample_rate, cfg.data.length)
    run = tmp_path / "run"
    Trainer(cfg, train, run, progress=False, tensorboard=False).fit()
    assert main(["kl-trajectory", str(run), "--data", str(syllable_data), "--window", "2"]) == 0
    out = capsys.readouterr().out
    saved = json.loads((run / "report" / "kl_trajectory.json").read_text())
    assert saved["epochs"] == list(range(7)) and saved["window"] == 2
    assert ("settled at epoch" in out) == (saved["settled_epoch"] is not None)
    assert "| epoch | m1 KL (nats)" in out
    assert (run / "report" / "kl_trajectory.png").stat().st_size > 10_000
    assert main(["kl-trajectory", str(tmp_path / "missing"), "--data", str(syllable_data)]) == 2
    assert "sim kl-trajectory: error" in capsys.readouterr().err


def test_registered_analysis_reports_the_trajectory_only_when_there_is_one(trained, tmp_path):
    from sim_models.analysis import kl_trajectory
    from sim_models.analysis.registry import ANALYSES, AnalysisContext
    from sim_models.analysis.run_analysis import ReportConfig
    from sim_models.rundir.load import load_run
    from sim_models.util.document import Heading, Image, Table

    assert ANALYSES["kl_trajectory"].compute is kl_trajectory.compute
    audio = torch.randn(4, 2560, generator=torch.Generator().manual_seed(2))
    ctx = AnalysisContext(load_run(trained), audio, (), trained / "report", ["m1", "m2", "m3"], ReportConfig(),
                          log=lambda *a: None)
    res = kl_trajectory.compute(ctx)
    assert res["kl_trajectory"]["epochs"] == [0, 1, 2] and res["kl_trajectory"]["settled_epoch"] is None
    assert (trained / res["files"]["kl_trajectory_png"]).is_file()
    blocks = kl_trajectory.section(res, ctx.names, {})
    assert [type(b) for b in blocks] == [Heading, type(blocks[1]), Table, Image]
    assert "had not settled by epoch 2" in blocks[1].text and len(blocks[2].rows) == 3

    data = TensorAudioDataset(torch.randn(10, 2560, generator=torch.Generator().manual_seed(0)))
    Trainer(_cfg("train.snapshot_every=0", "train.epochs=1"), data, tmp_path / "plain", progress=False,
            tensorboard=False).fit()
    ctx.run = load_run(tmp_path / "plain")
    assert kl_trajectory.compute(ctx) == {"kl_trajectory": None}
    assert kl_trajectory.section({"kl_trajectory": None}, ctx.names, {}) == []
