"""`sim eval --run RUN_DIR [--data DIR] [--protocol paper|thesis|robust] [--seeds N] [--representation sample|mean]`.

Linear probes of every stage and of the random-init baseline; --data defaults to the data the run was trained
on (RUN_DIR/run_info.json). Protocols: sim_models/evaluation/protocols.py, docs/evaluation.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

from sim_models.cli.common import set_threads
from sim_models.evaluation.evaluate import evaluate_run, markdown_table
from sim_models.evaluation.protocols import PROTOCOLS
from sim_models.model.encode import REPRESENTATIONS
from sim_models.rundir.run_info import resolve_data

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    e = sub.add_parser("eval", help="linear probes of every module and of the random-init baseline",
                       description="Protocols (docs/evaluation.md): paper = Table 2 of the SIM paper (time-averaged, "
                                   "raw features, syllables zero-padded at both ends, 50 epochs); thesis = Table 4.3 of "
                                   "the V-GIM thesis (flattened C x T features, 8800-sample syllables, 100 epochs, "
                                   "9 classes); robust = ours (z-scored time averages, padded at the end).")
    e.add_argument("--run", required=True)
    e.add_argument("--data", help="a `sim data` folder (default: the data the run was trained on, from RUN/run_info.json)")
    e.add_argument("--protocol", choices=tuple(PROTOCOLS), default="robust")
    e.add_argument("--seeds", type=int, default=3, help="repetitions of every probe (mean ± std)")
    e.add_argument("--representation", choices=REPRESENTATIONS, default=None,
                   help="probe a reparameterised sample (the SIM authors' measurement) or mu (mean); "
                        "default: the protocol's (paper: sample; thesis, robust: mean)")
    e.add_argument("--sample-draws", type=int, default=None,
                   help="with samples: cycle this many cached draws of the training features (default: a fresh draw "
                        "every epoch)")
    e.add_argument("--probe-epochs", type=int, default=None, help="default: the protocol's (50 or 100)")
    e.add_argument("--threads", type=int, default=0)
    e.set_defaults(func=run)


def run(a) -> int:
    set_threads(a.threads)
    try:
        data = resolve_data(a.run, a.data)
    except ValueError as e:
        print(f"sim eval: error: {e}", file=sys.stderr)
        return 2
    result = evaluate_run(a.run, data, protocol=a.protocol, seeds=a.seeds, representation=a.representation,
                          epochs=a.probe_epochs, sample_draws=a.sample_draws)
    print(markdown_table(result))
    print(f"\nwrote {Path(a.run) / f'eval_{a.protocol}.json'} (and eval.json)")
    return 0
