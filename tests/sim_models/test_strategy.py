"""The one Trainer loop calls a strategy object (sim_models/strategy.py); a new way of running is one subclass."""
import torch

from sim_models.checkpoint import load_checkpoint
from sim_models.config import apply_overrides, get_config
from sim_models.distributed.common import RankZeroStrategy, RankZeroWrites
from sim_models.strategy import SingleProcessStrategy
from sim_models.trainer import CHECKPOINT_NAME, Trainer

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


def test_default_strategy_is_single_process_and_the_old_mixin_name_is_an_alias(tmp_path):
    cfg = apply_overrides(get_config("tiny"), _OVR)
    t = Trainer(cfg, [torch.zeros(2560)] * 2, tmp_path, progress=False, tensorboard=False)
    assert type(t.strategy) is SingleProcessStrategy and t.strategy.writes_files
    assert RankZeroWrites is RankZeroStrategy
