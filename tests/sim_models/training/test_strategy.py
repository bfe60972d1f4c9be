"""The one Trainer loop calls a strategy object (sim_models/training/strategies/); a new way of running is one subclass."""
import torch

from sim_models.rundir.checkpoint import load_checkpoint
from sim_models.config import apply_overrides, get_config
from sim_models.model.greedy import build_model
from sim_models.training.strategies.single import Placement, SingleProcessStrategy
from sim_models.rundir.checkpoint import CHECKPOINT_NAME
from sim_models.training.trainer import Trainer

_OVR = ["model.channels=[8,8,8,8,8]", "model.ar_hidden=6", "data.length=2560", "train.batch_size=2",
        "train.epochs=1", "train.log_every=1", "train.device=cpu"]


class _Recording(SingleProcessStrategy):
    def __init__(self):
        self.calls = []

    def step(self, trainer, batch, active, opt_ids):
        self.calls.append(("step", tuple(active), tuple(opt_ids)))
        return super().step(trainer, batch, active, opt_ids)

    def barrier(self):
        self.calls.append(("barrier",))


def test_the_trainer_runs_through_its_strategy_and_a_subclass_changes_nothing_else(tmp_path):
    cfg = apply_overrides(get_config("tiny"), _OVR)
    data = list(torch.randn(4, 2560, generator=torch.Generator().manual_seed(1)))
    rec = _Recording()
    Trainer(cfg, data, tmp_path / "rec", progress=False, tensorboard=False, strategy=rec).fit()
    Trainer(cfg, data, tmp_path / "plain", progress=False, tensorboard=False).fit()
    assert [c[0] for c in rec.calls].count("step") == 2 and ("barrier",) in rec.calls
    a, b = load_checkpoint(tmp_path / "rec" / CHECKPOINT_NAME), load_checkpoint(tmp_path / "plain" / CHECKPOINT_NAME)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_default_strategy_is_single_process_and_its_setup_returns_the_placement(tmp_path):
    cfg = apply_overrides(get_config("tiny"), _OVR)
    t = Trainer(cfg, [torch.zeros(2560)] * 2, tmp_path, progress=False, tensorboard=False)
    assert type(t.strategy) is SingleProcessStrategy and t.strategy.writes_files
    # the strategy owns the device: setup gets the model, not the trainer, and returns what it chose
    model = build_model(cfg)
    placement = SingleProcessStrategy().setup(model, model.training_units(), cfg)
    assert isinstance(placement, Placement) and placement.device == torch.device("cpu") == t.device
    assert torch.equal(placement.generator.get_state(), torch.Generator().manual_seed(cfg.train.seed).get_state())


class _Parts(SingleProcessStrategy):
    """Overrides only the parts a step and a validation batch are built from."""

    def __init__(self):
        self.calls = []

    def losses(self, trainer, batch, active, generator):
        self.calls.append(("losses", torch.is_grad_enabled()))
        return super().losses(trainer, batch, active, generator)

    def step_optimizers(self, trainer, opt_ids):
        self.calls.append(("step_optimizers", tuple(opt_ids)))
        return super().step_optimizers(trainer, opt_ids)

    def end_batch(self, generator):
        self.calls.append(("end_batch",))


def test_step_and_validation_share_the_strategys_forward_and_end_of_batch(tmp_path):
    cfg = apply_overrides(get_config("tiny"), _OVR + ["train.validate=true"])
    data = list(torch.randn(4, 2560, generator=torch.Generator().manual_seed(1)))
    parts = _Parts()
    Trainer(cfg, data, tmp_path / "parts", progress=False, tensorboard=False, val_dataset=data[:3],
            strategy=parts).fit()
    Trainer(cfg, data, tmp_path / "plain", progress=False, tensorboard=False, val_dataset=data[:3]).fit()
    train = [("losses", True), ("step_optimizers", (0, 1, 2)), ("end_batch",)]
    val = [("losses", False), ("end_batch",)]
    assert parts.calls == train * 2 + val * 2  # two steps, then two validation batches (2 + 1 examples)
    a, b = load_checkpoint(tmp_path / "parts" / CHECKPOINT_NAME), load_checkpoint(tmp_path / "plain" / CHECKPOINT_NAME)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
