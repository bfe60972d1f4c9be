"""What several sub-commands share: the torch thread count and the run's config with its overrides."""
from __future__ import annotations

from pathlib import Path

import torch

from sim_models.config import apply_overrides, get_config, load_config

__all__ = ["set_threads", "run_config", "add_command"]


def set_threads(n: int | None) -> None:
    """torch.set_num_threads(n) for n > 0; 0 or None leaves torch's default."""
    if n and n > 0:
        torch.set_num_threads(n)


def run_config(config: str, out, resume: bool, overrides, epochs: int | None = None):
    """The Config a `sim train` invocation trains: the run's own RUN_DIR/config.yaml when resuming a run that has
    one (a stop requested for the previous invocation, train.max_steps, is not inherited), else the named
    preset or file ``config``; then ``overrides`` (section.key=value) and ``epochs``."""
    run = Path(out)
    if resume and (run / "config.yaml").exists():
        cfg = load_config(run / "config.yaml")
        cfg.train.max_steps = None
    else:
        cfg = get_config(config)
    overrides = list(overrides)
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    return apply_overrides(cfg, overrides)


def add_command(subparsers, name: str, doc: str):
    """The sub-parser of command ``name`` from its module's docstring ``doc``: the first paragraph is the usage
    line, the second the one-line help, the rest the description (`sim NAME --help`)."""
    parts = [" ".join(p.split()) for p in doc.strip().split("\n\n")]
    return subparsers.add_parser(name, help=parts[1], description=" ".join(parts[2:]) or parts[1])
