"""`sim train --config NAME|FILE --data DIR --out RUN_DIR [--epochs E] [--resume] [section.key=value ...]`.

Under torchrun with several processes: data or module parallel (``--parallel``, docs/distributed.md).
"""
from __future__ import annotations

from pathlib import Path

from sim_models.cli.common import run_config, set_threads
from sim_models.config import CONFIG_SUFFIXES, PRESETS
from sim_models.training.launch import PARALLEL, prepare_run
from sim_models.training.strategies.env import is_main_process, shutdown

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a named config (or a YAML/JSON config file)")
    t.add_argument("--config", default="sim-paper",
                   help=" | ".join(PRESETS) + " | a " + "/".join(CONFIG_SUFFIXES) + " file")
    t.add_argument("--data", required=True, help="a `sim data` folder, or any folder of wav/flac (LibriSpeech too)")
    t.add_argument("--out", required=True, help="run folder: config.yaml, checkpoint.pt, metrics.csv/jsonl")
    t.add_argument("--epochs", type=int)
    t.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: train.num_threads or torch's default)")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--parallel", choices=tuple(PARALLEL), default="data",
                   help="under torchrun with several processes: data parallel (DDP) or module parallel")
    t.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.lr=1e-3 model.beta=0")
    t.set_defaults(func=run)


def run(a) -> int:
    cfg = run_config(a.config, a.out, a.resume, a.overrides, a.epochs)
    set_threads(a.threads or cfg.train.num_threads)
    run = prepare_run(cfg, a.data, a.out, resume=a.resume, recorded_by="sim train", progress=not a.no_progress,
                      parallel=a.parallel)
    main = is_main_process()
    if main:
        print(f"training {cfg.name!r} ({cfg.train.mode}) on {len(run.trainer.dataset)} examples from {a.data} -> {a.out}")
    summary = run.fit()
    shutdown()
    if not main:
        return 0
    state = "stopped at max_steps" if summary["stopped_early"] else "finished"
    print(f"{state}: step {summary['steps']} ({summary['steps_this_run']} this run, {summary['seconds']:.0f} s); "
          f"checkpoint {Path(a.out) / 'checkpoint.pt'}")
    return 0
