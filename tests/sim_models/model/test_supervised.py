"""The supervised baseline (`--config supervised`): classifier loss, labelled padded syllables, end-to-end
training through the ordinary trainer and CLI, and a run folder that `sim eval` / analysis load."""
import pytest
import torch
from torch import nn

from sim_models.rundir.load import load_run
from sim_models.model.greedy import GreedyModel
from sim_models.cli import main
from sim_models.config import apply_overrides, get_config
from sim_models.data.datasets import SyllableDataset
from sim_models.evaluation.evaluate import evaluate_run
from sim_models.rundir.logs import read_metrics
from sim_models.model.supervised import LinearClassifierLoss
from sim_models.data.labelled import SyllableSegments, training_view
from sim_models.data.segmentation import pad_both_ends
from sim_models.training.trainer import Trainer

from tests.sim_models.analysis.test_analysis_run import LENGTH, SR, make_toy_syllable_data

SHRINK = ["model.channels=[8,8,8,8,8]", "model.ar_hidden=6", f"data.length={LENGTH}", "data.segment_length=1600",
          "train.batch_size=8", "train.epochs=1", "train.checkpoint_every=0", "train.log_every=2"]


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return make_toy_syllable_data(tmp_path_factory.mktemp("sup") / "data", num_words=16)


def _cfg(*extra):
    return apply_overrides(get_config("supervised"), SHRINK + list(extra))


def test_classifier_loss_is_cross_entropy_of_the_time_average():
    torch.manual_seed(0)
    loss_fn = LinearClassifierLoss(5, 3)
    x, y = torch.randn(4, 7, 5), torch.tensor([0, 2, 1, 2])
    loss, metrics = loss_fn(x, y)
    logits = loss_fn.classifier(x.mean(1))
    torch.testing.assert_close(loss, nn.functional.cross_entropy(logits, y))
    torch.testing.assert_close(metrics["accuracy"], (logits.argmax(1) == y).float().mean().reshape(1))
    with pytest.raises(ValueError, match="labels must be"):
        loss_fn(x, y[:3])
    with pytest.raises(TypeError, match="labels must be int64"):
        loss_fn(x, y.int())
    with pytest.raises(ValueError, match=r"features must be \(B, T, 5\)"):
        loss_fn(torch.randn(4, 7, 6), y)


def test_pad_both_ends_centres_and_crops():
    w = torch.arange(1.0, 6.0)
    torch.testing.assert_close(pad_both_ends(w, 9), torch.tensor([0, 0, 1, 2, 3, 4, 5, 0, 0.0]))
    torch.testing.assert_close(pad_both_ends(w, 3), torch.tensor([2, 3, 4.0]))


def test_segments_are_labelled_syllables(toy_data):
    ds = SyllableDataset(toy_data, "train", SR, LENGTH)
    seg = SyllableSegments(ds, 1600, "syllable")
    ref = ds.syllable_segments()
    assert len(seg) == len(ref) and seg.audio.shape == (len(ref), 1600)
    assert seg.labels.tolist() == [s[1] for s in ref]
    vow = SyllableSegments(ds, 1600, "vowel")
    assert vow.labels.tolist() == [s[2] for s in ref]
    a, y = seg[0]
    torch.testing.assert_close(a.abs().sum(), ref[0][0][:1600].abs().sum())  # padded, nothing cut
    with pytest.raises(TypeError, match="syllable labels"):
        training_view(torch.randn(3, 100), _cfg())


def test_supervised_model_trains_end_to_end_on_the_last_stage_only():
    model = GreedyModel(_cfg().model)
    assert list(model.losses) == ["3"] and isinstance(model.losses["3"], LinearClassifierLoss)
    x, y = torch.randn(4, 1600), torch.tensor([0, 8, 3, 4])
    with pytest.raises(ValueError, match="labels"):
        model.losses_for(x, [0, 1, 2, 3])
    results = model.losses_for(x, [0, 1, 2, 3], labels=y)
    assert [r.index for r in results] == [3]
    results[0].loss.backward()
    assert all(model.stages[m].body[0].weight.grad.abs().sum() > 0 for m in range(3))


def test_few_steps_decrease_the_cross_entropy():
    cfg = _cfg()
    torch.manual_seed(0)
    model = GreedyModel(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1600, generator=g), torch.randint(0, 9, (8,), generator=g)
    first = None
    for _ in range(15):
        loss = model.losses_for(x, [0, 1, 2, 3], labels=y)[0].loss
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(model.losses_for(x, [0, 1, 2, 3], labels=y)[0].loss.detach()) < first


def test_sim_train_supervised_run_is_an_ordinary_run(toy_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--config", "supervised", "--data", str(toy_data), "--out", str(run), "--no-progress",
                 *SHRINK]) == 0
    loaded = load_run(run)
    assert loaded.cfg.model.objective == "supervised" and loaded.steps > 0
    val = read_metrics(run, "val")
    assert [r["module"] for r in val] == [3] and 0 <= val[0]["accuracy"] <= 1
    result = evaluate_run(run, toy_data, epochs=2)
    assert len(result["modules"]) == 4 and result["config"] == "supervised"


def test_trainer_trains_on_segments(toy_data, tmp_path):
    cfg = _cfg("train.max_steps=2")
    train = SyllableDataset(toy_data, "train", SR, LENGTH)
    t = Trainer(cfg, train, tmp_path, progress=False, tensorboard=False)
    assert isinstance(t.dataset, SyllableSegments) and len(t.dataset) == len(train.syllable_segments())
    assert t.fit()["steps"] == 2


def test_data_parallel_trainer_carries_the_labels(toy_data, tmp_path):
    """The labels travel through DataParallelTrainer's collate and unit modules (one process: no group needed)."""
    from sim_models.training.launch import DataParallelTrainer
    from sim_models.training.strategies.env import DistInfo
    info = DistInfo(rank=0, world_size=1, local_rank=0, backend="gloo", device=torch.device("cpu"))
    train = SyllableDataset(toy_data, "train", SR, LENGTH)
    test = SyllableDataset(toy_data, "test", SR, LENGTH)
    cfg = _cfg("train.epochs=2", "train.max_steps=5")  # an epoch is 4 steps: one validation at step 4
    t = DataParallelTrainer(cfg, train, tmp_path / "dp", progress=False, tensorboard=False, info=info, val_dataset=test)
    assert t.fit()["steps"] == 5
    Trainer(cfg, train, tmp_path / "single", progress=False, tensorboard=False, val_dataset=test).fit()
    got, want = read_metrics(tmp_path / "dp", None), read_metrics(tmp_path / "single", None)
    assert [(r["split"], r["step"]) for r in got if r["split"] == "val"] == [("val", 4)]
    torch.testing.assert_close([r["loss"] for r in got], [r["loss"] for r in want])
