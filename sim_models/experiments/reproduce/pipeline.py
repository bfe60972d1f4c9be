"""The step list of `sim reproduce` (one budget, one data folder, one output folder).

Steps, in order (each one result file under OUT/steps/, see steps.py)::

    data                         synthesise `sim data` into DATA unless it holds metadata.json; a clone of the
                                 paper's recordings (DATA/reshuffledv2/...) is imported into OUT/data first
    beta_search                  `sim tune-beta` on SIM's config (OUT/beta_search/): the largest β that does not
                                 collapse (experiments/beta_search.py); SIM trains at that β
    train_<method>_s<seed>       every method × training seed -> OUT/runs/<method>_s<seed>/ (resumes its checkpoint)
    probe_<method>_s<seed>_<p>   linear probes under protocol p (paper, robust): the run and its random init
    analyse_<method>_s<seed>     SIM / GIM / CPC: `sim report`'s analyses (δ, concentration, active units, t-SNE,
                                 loss curves, activations, few labels, decoders, traversal, interpolation)
    verdicts_n<seeds>            verdicts.all_verdicts() on the measured numbers (measure.py)
    report_n<seeds>              OUT/report.md and OUT/report.html (report/reproduce.py)

OUT/reproduce.json records the budget's settings and the data; a folder trained with other settings is
refused (another --out), except that --seeds may grow: the new seeds' steps run, the old are kept. When only
the measuring settings (probes, analyses, report) changed, the trained runs are kept and the probe,
analysis, verdict and report steps are redone.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from sim_models.analysis.decoders import DecoderConfig
from sim_models.analysis.run_analysis import ReportConfig, analyse_run
from sim_models.analysis.verdicts import all_verdicts, verdicts_from_json, verdicts_to_json
from sim_models.config import apply_overrides, get_config, load_config
from sim_models.data.paper_recordings import import_recordings, is_recordings_folder
from sim_models.data.synth import generate
from sim_models.evaluation.evaluate import evaluate_run
from sim_models.experiments.beta_search import sweep_blocks, tune_beta
from sim_models.experiments.reproduce.budgets import Budget
from sim_models.experiments.reproduce.measure import measurements
from sim_models.experiments.reproduce.steps import StepRunner
from sim_models.report.reproduce import write_report
from sim_models.rundir.checkpoint import CHECKPOINT_NAME
from sim_models.training.launch import prepare_run
from sim_models.util.atomic_write import atomic_write_json
from sim_models.util.progress import log_line

__all__ = ["reproduce", "run_config", "ANALYSED_METHODS"]

ANALYSED_METHODS = ("SIM", "GIM", "CPC")  # the supervised baseline only enters Table 2


# Budget fields that decide what is trained; the others (probes, analyses, report) only decide what is measured.
_TRAINING_FIELDS = ("name", "words", "methods", "configs", "epochs", "common", "betas", "tune_epochs", "threads")
_MEASURED_STEPS = ("probe_", "analyse_", "verdicts_", "report_")


def _settings(budget: Budget, data_dir: Path) -> dict:
    d = asdict(budget)
    d.pop("seeds")
    return json.loads(json.dumps({"budget": d, "data": str(data_dir.resolve())}))


def _check_settings(out: Path, settings: dict, log) -> None:
    """Refuse a folder trained with other settings; when only the measuring settings changed (probes, analyses,
    report), keep the trained runs and remove the measured steps' results so they are redone."""
    spath = out / "reproduce.json"
    if not spath.is_file():
        return
    old = json.loads(spath.read_text()).get("settings") or {}
    if old == settings:
        return
    ob, nb = old.get("budget", {}), settings["budget"]
    if old.get("data") != settings["data"] or any(ob.get(k) != nb.get(k) for k in _TRAINING_FIELDS):
        raise ValueError(f"--out {out} holds a reproduction with other settings (budget or data): choose another "
                         "--out")
    stale = sorted(p for p in (out / "steps").glob("*.json") if p.name.startswith(_MEASURED_STEPS))
    log(f"[reproduce] the budget's measuring settings changed since {spath}: the trained runs are kept, "
        f"{len(stale)} probe / analysis / report step(s) will be redone")
    for p in stale:
        p.unlink()


def run_config(budget: Budget, method: str, seed: int, beta: float | None = None):
    """The Config of one run: the budget's config for ``method`` + common overrides + seed/epochs (+ SIM's β)."""
    name, overrides = budget.configs[method]
    ov = list(budget.common) + list(overrides) + [f"train.seed={seed}"]
    if budget.epochs.get(method) is not None:
        ov.append(f"train.epochs={budget.epochs[method]}")
    if method == "SIM" and beta is not None:
        ov.append(f"model.beta={beta}")
    return apply_overrides(get_config(name), ov)


def _resolve_data(data_dir: Path, out: Path, log) -> Path:
    """The `sim data` folder to use: ``data_dir`` itself, or, when it is a clone of the paper's recordings
    (sim_models/data/paper_recordings.py), their import under OUT/data (imported once)."""
    if not is_recordings_folder(data_dir):
        return data_dir
    target = out / "data"
    log(f"[reproduce] data: importing the paper's recordings from {data_dir} -> {target}")
    import_recordings(data_dir, target, log=log)
    return target


def _data_step(budget: Budget, data_dir: Path, log):
    if (data_dir / "metadata.json").is_file():
        meta = json.loads((data_dir / "metadata.json").read_text())
        log(f"[reproduce] data: using {data_dir} ({len(meta.get('items', []))} words)")
        return {"synthesised": False, "words": len(meta.get("items", []))}
    log(f"[reproduce] data: synthesising {budget.words} words with espeak-ng -> {data_dir}")
    meta = generate(data_dir, num_words=budget.words, seed=0)
    return {"synthesised": True, "words": len(meta["items"])}


def _beta_step(budget: Budget, data_dir: Path, out: Path, progress: bool, log):
    name, overrides = budget.configs["SIM"]
    sweep = tune_beta(name, data_dir, out / "beta_search", budget.betas, budget.tune_epochs,
                      list(budget.common) + list(overrides), progress=progress, log=log)
    chosen = sweep["chosen_beta"]
    verdict, reason = sweep.get("search_verdict", ""), sweep.get("search_reason", "")
    used = chosen
    note = f"the largest β of the grid that passes the search's rules (docs/beta_search.md): {verdict}"
    if chosen is None:  # no β passes: train SIM at the smallest anyway and say why none was chosen
        used = min(budget.betas)
        note = f"no β of the grid was chosen ({verdict}); SIM trained at the smallest, {used:g}"
    return {"chosen_beta": chosen, "beta": used, "note": note + (f". {reason}" if reason else ""),
            "search_verdict": verdict, "plot": "beta_search/sweep.png"}


def _reuse_beta_run(cfg, beta_dir: Path, run_dir: Path, log) -> bool:
    """The β search's finished run at the chosen β *is* a SIM run when its config equals ``cfg`` (same epochs,
    seed, overrides): copy it instead of training it again (the copy then resumes at its last step)."""

    if beta_dir is None or not (beta_dir / CHECKPOINT_NAME).is_file() or not (beta_dir / "config.yaml").is_file():
        return False
    a, b = load_config(beta_dir / "config.yaml").to_dict(), cfg.to_dict()
    a.pop("name"), b.pop("name")
    a["train"].pop("max_steps", None), b["train"].pop("max_steps", None)
    if a != b:
        return False
    tmp = run_dir.with_name(run_dir.name + ".copying")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(beta_dir, tmp)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.replace(tmp, run_dir)
    log(f"[reproduce] SIM seed {cfg.train.seed}: the β search's run {beta_dir} has this exact config; copied, not retrained")
    return True


def _train_step(budget, method, seed, beta, data_dir: Path, run_dir: Path, progress, log, beta_dir=None):
    cfg = run_config(budget, method, seed, beta)
    if method == "SIM" and not (run_dir / CHECKPOINT_NAME).is_file():
        _reuse_beta_run(cfg, beta_dir, run_dir, log)
    run = prepare_run(cfg, data_dir, run_dir, recorded_by="sim reproduce", progress=progress, tensorboard=False)
    log(f"[reproduce] {method} seed {seed}: {'resuming' if run.resumed else 'training'} {cfg.name!r} for "
        f"{cfg.train.epochs} epochs" + (f" at β = {beta:g}" if method == "SIM" else "") + f" -> {run_dir}")
    summary = run.fit()
    return {"run": str(run_dir), "steps": summary["steps"], "resumed": run.resumed, "config": cfg.name,
            "beta": cfg.model.beta, "epochs": cfg.train.epochs}


def _probe_step(budget, run_dir: Path, data_dir: Path, protocol: str):
    res = evaluate_run(run_dir, data_dir, protocol=protocol, seeds=budget.probe_seeds, epochs=budget.probe_epochs,
                       sample_draws=budget.probe_sample_draws)
    keys = ("module", "feature_dim", "table2_row", "vowel", "vowel_std", "syllable", "syllable_std",
            "random_init_vowel", "random_init_vowel_std", "random_init_syllable", "random_init_syllable_std")
    return {"protocol": res["protocol"], "seeds": res["seeds"], "representation": res.get("representation"),
            "n_train_syllables": res["n_train_syllables"],
            "n_test_syllables": res["n_test_syllables"], "modules": [{k: r.get(k) for k in keys} for r in res["modules"]]}


def _report_config(budget: Budget, seed: int):
    r = dict(budget.report)
    if r.get("decoder_preset"):  # the preset sets loss, lr, batch and (unless decoder_epochs) epochs
        dec = DecoderConfig(seed=seed)
    else:
        dec = DecoderConfig(epochs=r.pop("decoder_epochs", DecoderConfig().epochs), seed=seed)
    if "few_label_sizes" in r:
        r["few_label_sizes"] = tuple(r["few_label_sizes"])
    return ReportConfig(decoder=dec, seed=seed, **r)


def _analyse_step(budget, run_dir: Path, data_dir: Path, seed: int, log):
    s = analyse_run(run_dir, data_dir, _report_config(budget, seed), log=log)
    usage = (s.get("thesis") or {}).get("active_units") or []
    mods = []
    def condensed(conc: dict, ent: dict) -> dict:
        return {"top10_mass": conc["top10_mass"], "scaled_top10_mass": conc.get("scaled_top10_mass"),
                "vowel_probe_test_accuracy": conc["test_accuracy"],
                "delta": {sp: {"ns": ent[sp]["ns"], "delta": ent[sp]["delta"]} for sp in ("waveform", "mel")}}

    for i, m in enumerate(s["modules"]):
        u = usage[i] if i < len(usage) else {}
        by_rep = {r: condensed(v["concentration"], v["entanglement"]) for r, v in m.get("by_representation", {}).items()}
        mods.append({"module": m["module"], "width": m["width"], **condensed(m["concentration"], m["entanglement"]),
                     "representation": m.get("representation", "mean"), "by_representation": by_rep,
                     "active_units": u.get("active_kl"), "active_units_variance": u.get("active_variance"),
                     "probabilistic": u.get("probabilistic")})
    return {"analysis": str(run_dir / "report" / "analysis.json"), "modules": mods}


def _analysed_with(analyses: dict, representation: str) -> bool:
    """Whether every analysis result holds numbers for ``representation`` ("sample" / "mean")."""
    return bool(analyses) and all(representation in m.get("by_representation", {})
                                  for a in analyses.values() for m in a["modules"])


def _primary_representation(analyses: dict) -> str:
    """The representation the analyses' main numbers (and so the verdicts) were measured on."""
    reps = {m.get("representation", "mean") for a in analyses.values() for m in a["modules"]}
    return reps.pop() if len(reps) == 1 else "mixed"


def reproduce(budget: Budget, data_dir, out, seeds: int | None = None, progress: bool = True, log=log_line,
              jobs: int = 1) -> dict:
    """Run (or resume) every step; returns {"verdicts", "report_md", "report_html", "times", "skipped", "ran"}.
    ``log`` gets one line per step (and per run started); ``progress``: the trainer's, per epoch (progress.py).
    ``jobs``: the training runs, then the probes, then the analyses, that many at a time in worker processes, the
    budget's torch threads shared among them (steps.py: ``run_many``); the results are the same as with 1 (each
    run is seeded on its own). Raises ValueError for seeds or jobs < 1."""
    seeds = budget.seeds if seeds is None else int(seeds)
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    budget = budget.with_(seeds=seeds)
    data_dir, out = Path(data_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(budget, data_dir)
    spath = out / "reproduce.json"
    _check_settings(out, settings, log)
    atomic_write_json(spath, {"settings": settings, "seeds": seeds})
    data_dir = _resolve_data(data_dir, out, log)
    if budget.threads:
        torch.set_num_threads(budget.threads)
    t0 = time.time()
    steps = StepRunner(out, log)
    steps.run("data", lambda: _data_step(budget, data_dir, log))
    beta = steps.run("beta_search", lambda: _beta_step(budget, data_dir, out, progress, log))
    runs = {(method, s): out / "runs" / f"{method}_s{s}" for method in budget.methods for s in range(seeds)}
    # one process: this one's log and progress; several: each worker prints its own lines, no progress bars
    wlog, wprogress = (log, progress) if jobs == 1 else (log_line, False)
    threads = max(1, (budget.threads or os.cpu_count() or 1) // jobs)
    beta_dir = out / "beta_search" / f"beta_{beta['beta']:g}"
    steps.run_many([(f"train_{m}_s{s}", _train_step, (budget, m, s, beta["beta"], data_dir, rd, wprogress, wlog,
                                                       beta_dir)) for (m, s), rd in runs.items()], jobs, threads)
    probe_calls = {(m, s, p): (f"probe_{m}_s{s}_{p}", _probe_step, (budget, rd, data_dir, p))
                   for (m, s), rd in runs.items() for p in budget.protocols}
    done = steps.run_many(list(probe_calls.values()), jobs, threads)
    probes = {key: done[call[0]] for key, call in probe_calls.items()}
    n_an = seeds if budget.analyse_seeds is None else min(seeds, budget.analyse_seeds)
    analyse_calls = {(m, s): (f"analyse_{m}_s{s}", _analyse_step, (budget, rd, data_dir, s, wlog))
                     for (m, s), rd in runs.items() if m in ANALYSED_METHODS and s < n_an}
    done = steps.run_many(list(analyse_calls.values()), jobs, threads)
    analyses = {key: done[call[0]] for key, call in analyse_calls.items()}
    meas = {p: measurements(budget, seeds, probes, analyses, p) for p in budget.protocols}
    main = budget.protocols[0]
    # Table 3 and Fig. 2 on μ: the robustness row beside the samples the verdicts use (the SIM authors' measurement)
    robust = {r: measurements(budget, seeds, probes, analyses, main, representation=r)
              for r in ("mean", "sample") if _analysed_with(analyses, r)}

    def verdict_step():
        vs = all_verdicts(meas[main])
        extra = {}
        for p in budget.protocols[1:]:
            extra[p] = json.loads(verdicts_to_json(all_verdicts({"table2": meas[p]["table2"]})))
        primary = _primary_representation(analyses)
        other = {r: json.loads(verdicts_to_json(all_verdicts({"table3": m["table3"], "fig2": m["fig2"]})))
                 for r, m in robust.items() if r != primary}
        return {"protocol": main, "representation": primary, "verdicts": json.loads(verdicts_to_json(vs)),
                "other_protocols": extra, "other_representations": other, "measurements": meas,
                "measurements_by_representation": robust}
    ver = steps.run(f"verdicts_n{seeds}", verdict_step)
    verdicts = verdicts_from_json(json.dumps(ver["verdicts"]))
    sweep_file = out / "beta_search" / "sweep.json"
    sweep = sweep_blocks(json.loads(sweep_file.read_text())) if sweep_file.is_file() else []
    rep = steps.run(f"report_n{seeds}", lambda: write_report(out, budget, seeds, beta, runs, probes, analyses, ver,
                                                              dict(steps.times), data_dir, sweep))
    log(f"[reproduce] all steps done ({time.time() - t0:.0f} s this invocation; ran {len(steps.ran)}, "
        f"skipped {len(steps.skipped)})")
    return {"verdicts": verdicts, "other_verdicts": ver["other_protocols"], "report_md": rep["md"],
            "report_html": rep["html"], "times": dict(steps.times), "ran": steps.ran, "skipped": steps.skipped}
