"""Objectives say how they are fed (sim_models/model/objectives.py): GreedyModel calls ``stage_loss`` without asking
which objective a stage holds, so a new objective is one class."""
import pytest
import torch

from sim_kernels import SmoothInfoNCELoss
from sim_models.model.greedy import GreedyModel, StageResult
from sim_models.config import apply_overrides, get_config
from sim_models.model.objectives import StageInfoNCELoss, build_objective
from sim_models.model.supervised import LinearClassifierLoss

_TINY = ["model.channels=[8,8,8,8,8]", "model.ar_hidden=6"]


def _model(*extra):
    return GreedyModel(apply_overrides(get_config("tiny"), _TINY + list(extra)).model)


class _MeanSquare(torch.nn.Module):
    """A new objective in one class: the mean square of the stage's representation."""

    def __init__(self):
        super().__init__()
        self.fed = []

    def stage_loss(self, stage, out, prev_z, *, labels=None, generator=None):
        self.fed.append((stage.kind, None if prev_z is None else tuple(prev_z.shape), labels))
        loss = out.representation.pow(2).mean()
        zero = torch.zeros(1)
        return loss, {"nce": loss.detach().reshape(1), "accuracy": zero, "kl": zero[0]}


def test_the_self_supervised_objective_is_a_smooth_infonce_loss_with_the_same_state_keys():
    model = _model()
    assert all(type(l) is StageInfoNCELoss and isinstance(l, SmoothInfoNCELoss) for l in model.losses.values())
    plain = SmoothInfoNCELoss(8, 8, prediction_steps=3)
    assert list(StageInfoNCELoss(8, 8, prediction_steps=3).state_dict()) == list(plain.state_dict())


def test_stage_loss_feeds_the_stages_loss_inputs():
    model = _model()
    x = torch.randn(2, 2560)
    got = model.losses_for(x, [0, 1, 2], torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    outs, want = [], []
    for m in range(3):  # by hand, in the draw order of the stage loop: stage m's noise, then its loss's draws
        h = x.unsqueeze(1) if m == 0 else model.stages[m].input_from(outs[-1].z.detach())
        outs.append(model.stages[m](h, g))
        prev = None if m == 0 else outs[m - 1].z.detach()
        loss, _ = model.losses[str(m)](*model.stages[m].loss_inputs(outs[m], prev), generator=g, return_metrics=True)
        want.append(loss)
    torch.testing.assert_close([r.loss for r in got], want, rtol=0, atol=0)


def test_a_new_objective_is_one_class_and_the_model_asks_nothing_else():
    model = _model()
    model.losses["2"] = new = _MeanSquare()
    y = torch.tensor([1, 0])
    results = model.losses_for(torch.randn(2, 2560), [0, 1, 2], torch.Generator().manual_seed(0), labels=y)
    assert [r.index for r in results] == [0, 1, 2]
    (kind, prev_shape, labels), = new.fed  # the GRU stage, fed module 2's z (B, T, 8) and the labels
    assert kind == "GRU" and prev_shape[0] == 2 and prev_shape[2] == 8 and labels is y
    torch.testing.assert_close(results[2].metrics["nce"], results[2].loss.detach().reshape(1))


def test_build_objective_picks_the_classifier_for_the_supervised_last_stage_only():
    cfg = apply_overrides(get_config("supervised"), _TINY).model
    model = GreedyModel(cfg)
    assert isinstance(model.losses["3"], LinearClassifierLoss)
    assert isinstance(build_objective(cfg, model.stages[1], 1, 3), StageInfoNCELoss)
    with pytest.raises(ValueError, match="needs a module before it"):
        build_objective(cfg, model.stages[3], 0, 3)


def test_the_supervised_objective_refuses_a_batch_without_labels():
    loss_fn = LinearClassifierLoss(6, 3)
    out = _model().encode(torch.randn(2, 2560))[-1]
    with pytest.raises(ValueError, match=r"labels: a supervised objective needs the batch's labels"):
        loss_fn.stage_loss(None, out, None, labels=None)
    loss, metrics = loss_fn.stage_loss(None, out, None, labels=torch.tensor([0, 2]))
    torch.testing.assert_close(loss, loss_fn(out.representation, torch.tensor([0, 2]))[0])


def test_stage_result_stats_round_trip():
    r = StageResult(1, torch.tensor(2.5), {"nce": torch.tensor([1.0, 3.0]), "accuracy": torch.tensor([0.5, 0.25]),
                                           "kl": torch.tensor(0.125)})
    s = r.stats()
    assert s.tolist() == [2.5, 2.0, 0.125, 0.375] and s.dtype == torch.float32
    back = StageResult.from_stats(1, s)
    assert back.index == 1 and back.stats().tolist() == s.tolist()
