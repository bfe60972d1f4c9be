"""Loading a trained run (RUN_DIR/config.yaml + RUN_DIR/checkpoint.pt) for analysis.

The model is rebuilt from the run's own config (old flat-format files too: sim_models/config/legacy.py) with
``model.greedy.build_model`` and the checkpoint's
``"model"`` state dict, then put in eval mode: probabilistic modules then output mu (no sampling),
which is what every analysis uses as "the representation".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sim_models.config import Config, load_config
from sim_models.model.greedy import GreedyModel, build_model
from sim_models.rundir.checkpoint import CHECKPOINT_NAME, load_checkpoint

__all__ = ["LoadedRun", "load_run", "frozen_model"]


@dataclass
class LoadedRun:
    """run_dir: the folder; cfg: its Config; model: GreedyModel in eval mode; steps: training steps done."""
    run_dir: Path
    cfg: Config
    model: GreedyModel
    steps: int

    @property
    def name(self) -> str:
        return self.run_dir.name or str(self.run_dir)


def load_run(run_dir) -> LoadedRun:
    """The run in ``run_dir`` (its config.yaml and checkpoint.pt): the analyses' and ``evaluate_run``'s loader."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"run_dir {run_dir} has no config.yaml: is it a `sim train --out` folder?")
    cfg = load_config(run_dir / "config.yaml")
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    return LoadedRun(run_dir, cfg, frozen_model(cfg, state["model"]), int(state.get("position", {}).get("step", 0)))


def frozen_model(cfg: Config, model_state: dict) -> GreedyModel:
    """``build_model(cfg)`` with the weights of ``model_state``, in eval mode, every parameter without gradient."""
    model = build_model(cfg)
    model.load_state_dict(model_state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
