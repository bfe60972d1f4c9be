"""Evaluation of a run: probes of every module and of the random-init baseline, JSON + markdown."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..architectures import GreedyModel
from ..checkpoint import load_checkpoint
from ..config import load_config
from ..data.datasets import SyllableDataset
from ..modules import ARModule
from ..trainer import CHECKPOINT_NAME, build_model
from .probes import probe_all_modules

__all__ = ["evaluate_run", "markdown_table"]


def _module_names(model: GreedyModel) -> list:
    return [f"{m + 1} ({'GRU' if isinstance(st, ARModule) else 'conv'})" for m, st in enumerate(model.stages)]


def evaluate_run(run_dir, data_dir, epochs: int = 50, lr: float = 1e-3, seed: int = 0) -> dict:
    """Probe the trained model in ``run_dir`` and its random initialisation on the syllables of ``data_dir``.

    The baseline is the run's own starting point: the same architecture initialised from the same
    ``train.seed``, never trained. Writes run_dir/eval.json and run_dir/eval.md; returns the dict."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    trained = build_model(cfg)
    trained.load_state_dict(state["model"])
    random_init = build_model(cfg)
    train_set = SyllableDataset(data_dir, "train", cfg.data.sample_rate, cfg.data.length)
    test_set = SyllableDataset(data_dir, "test", cfg.data.sample_rate, cfg.data.length)
    tr, te = train_set.syllable_segments(), test_set.syllable_segments()
    rows_t = probe_all_modules(trained, tr, te, epochs, lr, seed)
    rows_r = probe_all_modules(random_init, tr, te, epochs, lr, seed)
    names = _module_names(trained)
    modules = [{"module": names[m], "channels": rt["channels"],
                "vowel": rt["vowel"]["test_accuracy"], "syllable": rt["syllable"]["test_accuracy"],
                "random_init_vowel": rr["vowel"]["test_accuracy"], "random_init_syllable": rr["syllable"]["test_accuracy"],
                "detail": {"trained": rt, "random_init": rr}} for m, (rt, rr) in enumerate(zip(rows_t, rows_r))]
    result = {"run": str(run_dir), "data": str(data_dir), "config": cfg.name, "steps": state["position"]["step"],
              "probe": {"optimizer": "Adam", "lr": lr, "epochs": epochs, "pooling": "time average",
                        "standardized_features": True},
              "n_train_syllables": len(tr), "n_test_syllables": len(te),
              "chance": {"vowel": 1 / 3, "syllable": 1 / 9}, "modules": modules}
    tmp = run_dir / "eval.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, run_dir / "eval.json")
    (run_dir / "eval.md").write_text(markdown_table(result) + "\n")
    return result


def markdown_table(result: dict) -> str:
    lines = [f"Linear probes, test accuracy ({result['config']}, {result['steps']} steps; "
             f"{result['n_train_syllables']} train / {result['n_test_syllables']} test syllables)", "",
             "| module | vowel | vowel, random init | syllable | syllable, random init |",
             "|---|---|---|---|---|"]
    for r in result["modules"]:
        lines.append(f"| {r['module']} | {100 * r['vowel']:.1f} % | {100 * r['random_init_vowel']:.1f} % | "
                     f"{100 * r['syllable']:.1f} % | {100 * r['random_init_syllable']:.1f} % |")
    lines.append(f"| chance | {100 / 3:.1f} % | | {100 / 9:.1f} % | |")
    return "\n".join(lines)
