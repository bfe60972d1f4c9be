"""Evaluation of a run under a named protocol: every module, the trained model and its random init, JSON + markdown.

Files: RUN_DIR/eval_<protocol>.json and .md, and RUN_DIR/eval.json / eval.md (a copy of the latest
evaluation, which `sim report` includes). Protocols: sim_models/evaluation/protocols.py.
"""
from __future__ import annotations

import json
from pathlib import Path

from sim_models.data.datasets import SyllableDataset
from sim_models.evaluation.protocols import get_protocol, probe_protocol
from sim_models.model.encode import check_representation
from sim_models.model.greedy import build_model, stage_names
from sim_models.rundir.load import load_run
from sim_models.util.atomic_write import atomic_write_text
from sim_models.util.document import Code, Paragraph, Table, to_markdown

__all__ = ["evaluate_run", "probe_blocks", "markdown_table", "word_overlap"]


def word_overlap(train_items, test_items) -> dict:
    """How many test words share their syllable sequence with a training word (the split is by word, so no
    recording is in both; the same word spoken by another voice can be). items: metadata dicts with "syllables"."""
    train_words = {tuple(it["syllables"]) for it in train_items}
    shared = sum(tuple(it["syllables"]) in train_words for it in test_items)
    return {"test_words": len(test_items), "test_words_sharing_a_train_word": shared,
            "share": shared / len(test_items) if test_items else 0.0, "distinct_train_words": len(train_words)}


def evaluate_run(run_dir, data_dir, protocol: str = "robust", seeds: int = 3, representation: str | None = None,
                 epochs: int | None = None, sample_draws: int | None = None) -> dict:
    """Probe the trained model in ``run_dir`` and its random initialisation on the syllables of ``data_dir``
    under ``protocol`` ("paper", "thesis", "robust"), ``seeds`` times each.

    The baseline is the run's own starting point: the same architecture initialised from the same
    ``train.seed``, never trained, probed by the same protocol. ``epochs`` overrides the protocol's.
    ``representation``: "sample" | "mean" (protocols.py); None = the protocol's default ("sample" for
    "paper", the SIM authors' measurement; "mean" otherwise); the one used is recorded as
    result["representation"]. ``sample_draws``: see protocols.FeatureDraws (None: a fresh draw per epoch).
    Writes RUN_DIR/eval_<protocol>.json/.md and eval.json/.md; returns the dict."""
    run_dir = Path(run_dir)
    proto = get_protocol(protocol, epochs)
    representation = check_representation(proto.representation if representation is None else representation)
    run = load_run(run_dir)
    cfg, trained = run.cfg, run.model
    random_init = build_model(cfg)
    train_set = SyllableDataset(data_dir, "train", cfg.data.sample_rate, cfg.data.length)
    test_set = SyllableDataset(data_dir, "test", cfg.data.sample_rate, cfg.data.length)
    tr, te = train_set.syllable_segments(), test_set.syllable_segments()
    rows_t = probe_protocol(trained, tr, te, proto, seeds, representation, sample_draws)
    rows_r = probe_protocol(random_init, tr, te, proto, seeds, representation, sample_draws)
    names = stage_names(trained, "number")
    modules = []
    for m, (rt, rr) in enumerate(zip(rows_t, rows_r)):
        # Table 2's row is the GRU's average-pooled output (paper §4.2); a model without a GRU has none.
        is_table2 = proto.name == "paper" and m == len(names) - 1 and trained.stages[m].kind == "GRU"
        row = {"module": names[m], "feature_dim": rt["feature_dim"], "table2_row": is_table2}
        for task in ("vowel", "syllable"):
            for prefix, r in (("", rt), ("random_init_", rr)):
                res = r.get(task)
                row[prefix + task] = None if res is None else res["mean"]
                row[prefix + task + "_std"] = None if res is None else res["std"]
                row[prefix + task + "_runs"] = None if res is None else res["runs"]
                row[prefix + task + "_train"] = None if res is None else res["train_mean"]
        modules.append(row)
    result = {"run": str(run_dir), "data": str(data_dir), "config": cfg.name, "steps": run.steps,
              "protocol": proto.to_dict(), "seeds": seeds, "representation": representation,
              "sample_draws": sample_draws if representation == "sample" else None,
              "n_train_syllables": len(tr), "n_test_syllables": len(te),
              "word_overlap": word_overlap(train_set.items, test_set.items),
              "chance": {"vowel": 1 / 3, "syllable": 1 / 9}, "modules": modules}
    text = json.dumps(result, indent=2)
    md = markdown_table(result) + "\n"
    for stem in (f"eval_{proto.name}", "eval"):
        atomic_write_text(run_dir / f"{stem}.json", text)
        (run_dir / f"{stem}.md").write_text(md)
    return result


def _cell(row, key) -> str:
    if row.get(key) is None:
        return "–"
    std = row.get(key + "_std")
    return f"{100 * row[key]:.1f} ± {100 * std:.1f} %" if std is not None else f"{100 * row[key]:.1f} %"


def probe_blocks(result: dict) -> list:
    """The probes as page blocks (sim_models/util/document.py): a sentence on the setting, one table row per
    module and its random init, chance, the word overlap. ``result``: evaluate_run's dict (eval.json)."""
    p = result.get("protocol", {"name": "robust", "epochs": "?"})
    ov = result.get("word_overlap")
    rows = tuple((r["module"] + (" (Table 2 row)" if r.get("table2_row") else ""), _cell(r, "vowel"),
                  _cell(r, "random_init_vowel"), _cell(r, "syllable"), _cell(r, "random_init_syllable"))
                 for r in result["modules"])
    chance = result.get("chance", {"vowel": 1 / 3, "syllable": 1 / 9})
    rows += (("chance", f"{100 * chance['vowel']:.1f} %", "", f"{100 * chance['syllable']:.1f} %", ""),)
    out = [Paragraph((f"Linear probes, test accuracy, mean ± std over {result.get('seeds', 1)} seeds "
                      f"({result['config']}, {result['steps']} steps; protocol ", Code(p["name"]),
                      f", {p['epochs']} epochs, representation {result.get('representation', 'mean')}; "
                      f"{result['n_train_syllables']} train / {result['n_test_syllables']} test syllables)")),
           Table(("module", "vowel", "vowel, random init", "syllable", "syllable, random init"), rows)]
    if ov:
        out.append(Paragraph(f"Split by word: {ov['test_words_sharing_a_train_word']} of {ov['test_words']} test "
                             f"words ({100 * ov['share']:.0f} %) share their syllable sequence with a training word "
                             "(another recording of the same word; no recording is in both splits)."))
    return out


def markdown_table(result: dict) -> str:
    """``probe_blocks`` as markdown (eval.md, the terminal)."""
    return to_markdown(probe_blocks(result)).rstrip("\n")
