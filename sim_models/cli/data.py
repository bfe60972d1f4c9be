"""`sim data`: synthesise the syllable data set (espeak-ng and/or flite), or import the paper's recordings.

    sim data --out DIR [--words N] [--seed S] [--engine espeak-ng|flite|both] [--speakers N] [--constant]
    sim data --import DIR --out OUT        the paper's recordings (a clone of fdenoodt/Artificial-Speech-Dataset)
"""
from __future__ import annotations

import sys
import time

from sim_models.data.paper_recordings import import_recordings, source_line
from sim_models.data.synth import ENGINES, generate

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    d = sub.add_parser("data", help="synthesise the syllable data set with espeak-ng and/or flite, or import the "
                                    "paper's recordings (--import)")
    d.add_argument("--out", required=True)
    d.add_argument("--import", dest="import_dir", metavar="DIR",
                   help="import the paper's recordings from DIR, a clone of "
                        "https://github.com/fdenoodt/Artificial-Speech-Dataset (CC BY-NC-SA 4.0), instead of synthesising")
    d.add_argument("--words", type=int, default=851)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--engine", choices=ENGINES, default="espeak-ng",
                   help="flite: CMU voices of real speakers (awb, rms, slt, kal16)")
    d.add_argument("--speakers", type=int, default=None, help="use the first N voices of each engine (default: all)")
    d.add_argument("--constant", action="store_true",
                   help="one rate, one pitch, monotone, stress on the first syllable; with --speakers 1: the paper's "
                        "single speaker in a constant tone")
    d.add_argument("--processes", type=int, default=2, help="parallel espeak-ng workers")
    d.set_defaults(func=run)


def run(a) -> int:
    t = time.time()
    if a.import_dir:
        try:
            meta = import_recordings(a.import_dir, a.out, log=print)
        except ValueError as e:
            print(f"sim data: error: {e}", file=sys.stderr)
            return 2
        n_test = sum(it["split"] == "test" for it in meta["items"])
        print(f"imported {len(meta['items'])} words ({len(meta['items']) - n_test} train / {n_test} test) and "
              f"{len(meta['syllable_items'])} syllable files to {a.out} in {time.time() - t:.0f} s\n{source_line()}")
        return 0
    meta = generate(a.out, num_words=a.words, seed=a.seed, processes=a.processes, engine=a.engine, speakers=a.speakers,
                    constant=a.constant)
    n_test = sum(it["split"] == "test" for it in meta["items"])
    print(f"wrote {len(meta['items'])} words ({len(meta['items']) - n_test} train / {n_test} test) to {a.out} "
          f"in {time.time() - t:.0f} s")
    return 0
