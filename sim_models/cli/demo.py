"""`sim demo --out DIR [--words N] [--epochs E]`: data -> train "tiny" -> eval, end to end; prints the table.

The defaults (851 words as in the paper, 12 epochs of "tiny", one torch thread) fit a ~15 min CPU budget on
2 cores; what they reached and how long it took: docs/results.md.
"""
from __future__ import annotations

import time
from pathlib import Path

from sim_models.cli.common import set_threads
from sim_models.config import apply_overrides, get_config
from sim_models.data.synth import generate
from sim_models.evaluation.evaluate import evaluate_run, markdown_table
from sim_models.training.launch import prepare_run

__all__ = ["add_parser", "run", "DEMO_WORDS", "DEMO_EPOCHS"]

DEMO_WORDS = 851   # the paper's number of words
DEMO_EPOCHS = 12


def add_parser(sub) -> None:
    m = sub.add_parser("demo", help="data -> train 'tiny' -> eval, end to end")
    m.add_argument("--out", default="runs/demo")
    m.add_argument("--words", type=int, default=DEMO_WORDS)
    m.add_argument("--epochs", type=int, default=DEMO_EPOCHS)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared or busy machine more threads slow small convs down)")
    m.add_argument("--no-progress", action="store_true")
    m.add_argument("overrides", nargs="*")
    m.set_defaults(func=run)


def run(a) -> int:
    set_threads(a.threads)
    out = Path(a.out)
    data_dir, run_dir = out / "data", out / "run"
    t0 = time.time()
    if not (data_dir / "metadata.json").exists():
        print(f"[demo 1/3] synthesising {a.words} words with espeak-ng -> {data_dir}")
        generate(data_dir, num_words=a.words, seed=a.seed)
    else:
        print(f"[demo 1/3] reusing {data_dir}")
    t1 = time.time()
    cfg = apply_overrides(get_config("tiny"), [f"train.epochs={a.epochs}", f"train.seed={a.seed}"] + list(a.overrides))
    run = prepare_run(cfg, data_dir, run_dir, recorded_by="sim demo", progress=not a.no_progress)
    print(f"[demo 2/3] training 'tiny' for {cfg.train.epochs} epochs on {len(run.trainer.dataset)} words -> {run_dir}")
    run.fit()
    t2 = time.time()
    print("[demo 3/3] linear probes (trained modules and random init)")
    result = evaluate_run(run_dir, data_dir)
    t3 = time.time()
    print()
    print(markdown_table(result))
    print(f"\ntimes: data {t1 - t0:.0f} s, training {t2 - t1:.0f} s, probes {t3 - t2:.0f} s; results in {run_dir / 'eval.json'}")
    return 0
