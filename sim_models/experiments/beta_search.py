"""`sim tune-beta`: the paper's choice of β, automated, with its two failure kinds kept apart.

The Smooth InfoMax paper (§4.1.3) sets β = 0.01, "the largest value we could obtain without causing the
posteriors to collapse to the standard normal distribution". ``tune_beta`` trains one short run per β of a
grid (same config, data, seed and epochs; only ``model.beta`` differs), measures every run on the
**held-out (test) split** of a ``sim data`` folder, gives every β a verdict by the rules below and picks β.

**Units of β.** The KL term is reduced as ``model.kl_reduction`` says. With "time" (the authors' code,
fdenoodt/Smooth-InfoMax ``models/independent_module.py``: the KL of a (B, T, C) posterior summed over the
T frames, then averaged over batch and channels) one nat of KL per frame in one unit of module m costs
β·T_m/C_m of loss; with "dims" (the paper's formula: summed over channels, averaged over frames) it costs β.
That cost is the **price per nat** reported for every module and every β (``price_per_nat``). The paper's
β = 0.01 ("time", 512 channels, T = 511 / 129 / 64 frames) costs 0.01 / 0.0025 / 0.00125 per nat in its
modules 1 / 2 / 3; at C channels the same price in module 1 is β = 0.01·C/512. Both values are in the
default "time" grid (``default_betas``).

Measurements per module, on the test split, model in eval mode (μ, no sampling; a fixed generator for the
negatives):

* ``accuracy``: the Smooth-InfoNCE prediction accuracy, the share of anchors whose positive outscores all
  N negatives (a tie counts as wrong), averaged over the K steps; chance is 1/(N+1).
* ``active_units_kl`` (also under the older key ``active_units``): dimensions whose mean KL to the N(0, 1)
  prior exceeds 0.01 nats; ``active_units_variance``: dimensions whose posterior mean varies over inputs and
  frames by Var_x[μ] > 0.01 (Burda, Grosse & Salakhutdinov 2016, §5.2). Probabilistic modules only
  (``active_units.py``).

**Verdict per β** (our rules, fixed before any sweep was run, not tuned to a result; ``CollapseRule``):

* **"did not learn"** (under-training): in some module with a loss, the held-out accuracy is below
  ``chance + min_accuracy_gain · (1 − chance)``, ``min_accuracy_gain = 0.05`` (for N = 10: below 13.6 %
  against a chance of 9.1 %). The module predicts the future frame barely better than guessing.
* **"collapsed"** (the paper's criterion, posterior collapse): some probabilistic module keeps fewer than
  ``min_active_units = 1`` active units by the KL criterion, i.e. every unit's mean KL is ≤ 0.01 nats: every
  posterior is (nearly) the prior. This label wins over the accuracy: a module can have no active unit and
  still decent held-out accuracy, because the accuracy is measured on μ and W_k can amplify differences in μ
  far below 0.01 nats; on samples (what the module passes on in training, and what the authors evaluated)
  such differences drown in unit-variance noise. The run's ``notes`` say when this happens.
* **"collapsed + did not learn"** when both hold (in the same or in different modules); **"ok"** when neither.

A run *passes* when its verdict is "ok".

**Choice**: the largest β of the grid such that it *and every smaller β* pass (failures are expected to
grow with β; a pass above a failure is reported as non-monotone and not chosen). **Search verdict**, from
the smallest failing β (the one that stops the choice):

* ``"chosen"``: no β failed, or the first failure collapsed (alone, or also did not learn while the β below
  it learned at the same length, so β, not the run length, is to blame);
* ``"chosen; the next β did not learn"``: the first failure only did not learn (its units are active): the
  search stopped on under-training, not on collapse; longer runs may allow a larger β;
* ``"under-trained: lengthen the runs"``: no β chosen, the smallest β did not learn (with or without
  collapse: units that start at the prior stay there when the NCE does not learn, so without a smaller β
  that learned at the same length collapse cannot be told from under-training);
* ``"every β collapsed"``: no β chosen, the smallest β collapsed while learning, and every β collapsed;
* ``"the smallest β collapsed"``: as above, but some larger β did not collapse.

``search_reason`` says it in a sentence with the numbers. The rules are re-applied to the stored numbers on
every call, so changing them needs no retraining.

Files under ``out``::

    beta_<β>/          a normal `sim train` run folder per β (config.yaml, checkpoint.pt, metrics, run_info.json)
    sweep.json         settings, every β's measurements, price per nat and verdict, the chosen β and the
                       search verdict (written after each β, atomically)
    sweep.png          held-out NCE accuracy and active units (both criteria) against β

Resumable: a β whose measurements are in sweep.json is skipped; a β whose training was interrupted resumes
from its checkpoint. A sweep folder made with other settings (config, epochs, overrides, data) is refused
rather than mixed.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from sim_models.analysis.active_units import (ACTIVE_THRESHOLD, active_units, kl_per_dimension,
                                              mean_variance_per_dimension)
from sim_models.analysis.plotting import new_figure, save_figure
from sim_models.analysis.posterior_usage import encode_posteriors
from sim_models.config import apply_overrides, get_config
from sim_models.data.datasets import SyllableDataset
from sim_models.model.encode import eval_mode
from sim_models.model.greedy import count_frames, describe_stages
from sim_models.training.launch import prepare_run
from sim_models.util.atomic_write import atomic_write_json
from sim_models.util.document import Bullets, Paragraph, Table, to_markdown

__all__ = ["DEFAULT_BETAS", "DEFAULT_EPOCHS", "PAPER_BETA", "PAPER_WIDTH", "VERDICTS", "SEARCH_VERDICTS",
           "CollapseRule", "default_betas", "stage_geometry", "price_per_nat", "heldout_metrics", "judge",
           "choose_beta", "tune_beta", "plot_sweep", "sweep_blocks", "sweep_table"]

# The "dims" grid: 0 (no KL), the V-GIM thesis' 0.0035 and the paper's 0.01 inside a roughly geometric grid.
DEFAULT_BETAS = (0.0, 0.0003, 0.001, 0.002, 0.0035, 0.005, 0.01, 0.02)
DEFAULT_EPOCHS = 3  # "short runs": enough to see a collapse, not to train a model; raise it for a real search
PAPER_BETA, PAPER_WIDTH = 0.01, 512   # paper §4.1.3 (β, "time" in the authors' code) at 512 channels (§4.1.2)
# the multiples of the carried β (0.01·C/512) in the default "time" grid, besides 0 and the paper's 0.01
_TIME_GRID_MULTIPLES = (0.1, 0.3, 1.0, 3.0)

OK, DID_NOT_LEARN, COLLAPSED, BOTH = "ok", "did not learn", "collapsed", "collapsed + did not learn"
VERDICTS = (OK, DID_NOT_LEARN, COLLAPSED, BOTH)
SEARCH_CHOSEN = "chosen"
SEARCH_CHOSEN_UNDER_TRAINED_ABOVE = "chosen; the next β did not learn"
SEARCH_UNDER_TRAINED = "under-trained: lengthen the runs"
SEARCH_ALL_COLLAPSED = "every β collapsed"
SEARCH_SMALLEST_COLLAPSED = "the smallest β collapsed"
SEARCH_VERDICTS = (SEARCH_CHOSEN, SEARCH_CHOSEN_UNDER_TRAINED_ABOVE, SEARCH_UNDER_TRAINED, SEARCH_ALL_COLLAPSED,
                   SEARCH_SMALLEST_COLLAPSED)


@dataclass(frozen=True)
class CollapseRule:
    """See the module docstring. min_accuracy_gain: share of the way from chance to 100 % the held-out
    accuracy must reach in every module with a loss ("did not learn" below it); min_active_units: active
    units (mean KL > active_threshold nats) every probabilistic module keeps ("collapsed" below it)."""
    min_accuracy_gain: float = 0.05
    min_active_units: int = 1
    active_threshold: float = ACTIVE_THRESHOLD

    def __post_init__(self):
        if not 0 <= self.min_accuracy_gain < 1:
            raise ValueError(f"min_accuracy_gain must be in [0, 1), got {self.min_accuracy_gain}")
        if self.min_active_units < 0:
            raise ValueError(f"min_active_units must be >= 0, got {self.min_active_units}")
        if not self.active_threshold >= 0:
            raise ValueError(f"active_threshold must be >= 0, got {self.active_threshold}")


def _model_cfg(cfg):
    """A ModelConfig from a Config or a ModelConfig."""
    return getattr(cfg, "model", cfg)


def stage_geometry(cfg, length: int | None = None) -> dict:
    """Per stage of ``cfg`` (a Config, or a ModelConfig with ``length`` given): {"frames": [T_m], "widths":
    [C_m], "probabilistic": [bool], "kl_reduction": str, "length": samples in}. T_m from
    ``architectures.count_frames``, C_m the built stages' ``out_channels`` (built on the meta device: no memory,
    no draws from the global generator). sim-paper, 10240 samples: frames [511, 129, 64, 64], widths
    [512, 512, 512, 256]."""
    m = _model_cfg(cfg)
    if length is None:
        if not hasattr(cfg, "data"):
            raise ValueError("length is needed when cfg is a ModelConfig")
        length = cfg.data.length
    stages = describe_stages(m)
    return {"frames": [int(t) for t in count_frames(m, length)], "widths": [int(st.out_channels) for st in stages],
            "probabilistic": [bool(getattr(st, "probabilistic", False)) for st in stages],
            "kl_reduction": m.kl_reduction, "length": int(length)}


def _prices(beta: float, geometry: dict) -> list:
    """β·T_m/C_m ("time") or β ("dims") per probabilistic stage, None for a stage without a posterior."""
    out = []
    for t, c, prob in zip(geometry["frames"], geometry["widths"], geometry["probabilistic"]):
        if not prob:
            out.append(None)
        elif geometry["kl_reduction"] == "time":
            out.append(beta * t / c)
        else:
            out.append(float(beta))
    return out


def price_per_nat(cfg, beta: float | None = None, length: int | None = None) -> list:
    """Loss paid per nat of KL per frame in one unit, per stage (None for deterministic stages and the GRU).

    cfg: a Config (or a ModelConfig with ``length``); beta: defaults to the config's ``model.beta``.
    "time" (the authors' reduction: KL summed over T_m frames, averaged over batch and C_m channels):
    β·T_m/C_m; "dims" (the paper's formula: summed over channels, averaged over batch and frames): β.
    sim-paper (β = 0.01, "time"): [0.00998, 0.00252, 0.00125, None]."""
    geometry = stage_geometry(cfg, length)
    return _prices(_model_cfg(cfg).beta if beta is None else float(beta), geometry)


def default_betas(cfg) -> tuple:
    """The default grid of a config (Config or ModelConfig), in the units of its ``kl_reduction``.

    "time": 0, the paper's 0.01, and β_C = 0.01·C/512 (C: the width of the first probabilistic module, the
    paper's price per nat carried to that width) times 0.1, 0.3, 1 and 3 (the others rounded to 4 significant
    digits; β_C itself exact). sim-paper: (0, 0.001, 0.003, 0.01, 0.03); sim-small (C = 48): (0, 9.375e-05,
    0.0002812, 0.0009375, 0.002812, 0.01), where 0.01 costs 10.7 times the paper's price in module 1.
    "dims": ``DEFAULT_BETAS`` (the paper's 0.01 costs 0.01 per nat in every module there)."""
    m = _model_cfg(cfg)
    if m.kl_reduction != "time":
        return DEFAULT_BETAS
    widths = [st.out_channels for st in describe_stages(m) if getattr(st, "probabilistic", False)]
    if not widths:
        raise ValueError("the config has no probabilistic module: β has no effect")
    carried = PAPER_BETA * widths[0] / PAPER_WIDTH
    grid = {0.0, PAPER_BETA, carried}
    grid |= {float(f"{carried * f:.4g}") for f in _TIME_GRID_MULTIPLES if f != 1.0}
    return tuple(sorted(grid))


@torch.no_grad()
def heldout_metrics(model, audio: torch.Tensor, negative_samples: int, batch_size: int = 32, seed: int = 0,
                    active_threshold: float = ACTIVE_THRESHOLD) -> list:
    """Per-module held-out measurements of a GreedyModel on ``audio`` (N, L).

    Returns one dict per stage: {"stage", "probabilistic", "width" (C), "accuracy" (mean over k, or None for
    a stage without a loss), "nce" (nats), "chance" (1/(N+1)), "active_units" and "active_units_kl" (KL >
    active_threshold nats), "active_units_variance" (Var_x[μ] > active_threshold), "kl_mean" (nats per
    dimension and frame, averaged over dimensions), "kl_per_dim" (C floats, nats), "var_mu_per_dim" (C floats)}
    — the last six None for a deterministic stage. Model left in the mode it was in."""
    if audio.dim() != 2 or audio.shape[0] == 0:
        raise ValueError(f"audio must be a non-empty (N, L) tensor, got {tuple(audio.shape)}")
    g = torch.Generator().manual_seed(seed)
    n_st = model.num_stages
    acc, nce, weight = [0.0] * n_st, [0.0] * n_st, [0] * n_st
    with eval_mode(model):
        for i in range(0, audio.shape[0], batch_size):
            batch = audio[i:i + batch_size]
            for r in model.losses_for(batch, list(range(n_st)), generator=g):
                acc[r.index] += float(r.metrics["accuracy"].mean()) * batch.shape[0]
                nce[r.index] += float(r.metrics["nce"].mean()) * batch.shape[0]
                weight[r.index] += batch.shape[0]
    posteriors = encode_posteriors(model, audio, batch_size)  # draws nothing: eval mode, mu
    chance = 1.0 / (negative_samples + 1)
    rows = []
    for m in range(n_st):
        prob = posteriors[m] is not None
        row = {"stage": m, "probabilistic": prob, "width": int(model.stages[m].out_channels),
               "accuracy": acc[m] / weight[m] if weight[m] else None, "nce": nce[m] / weight[m] if weight[m] else None,
               "chance": chance, "active_units": None, "active_units_kl": None, "active_units_variance": None,
               "kl_mean": None, "kl_per_dim": None, "var_mu_per_dim": None}
        if prob:
            mu, lv = posteriors[m]
            kl, var_mu = kl_per_dimension(mu, lv), mean_variance_per_dimension(mu)
            n_kl = active_units(mu, lv, "kl", active_threshold)
            row.update(active_units=n_kl, active_units_kl=n_kl,
                       active_units_variance=active_units(mu, lv, "variance", active_threshold),
                       kl_mean=float(kl.mean()), kl_per_dim=[float(x) for x in kl],
                       var_mu_per_dim=[float(x) for x in var_mu])
        rows.append(row)
    return rows


def _active_kl(row: dict):
    return row.get("active_units_kl", row.get("active_units"))


def judge(modules: list, rule: CollapseRule = CollapseRule()) -> dict:
    """Apply the two rules of the module docstring to one run's ``heldout_metrics`` rows (stored rows work).

    Returns {"verdict": one of VERDICTS, "did_not_learn": bool, "collapsed": bool (posterior collapse only),
    "passed": bool (verdict "ok"), "reasons": [str] (one per failing module and rule), "notes": [str] (a
    collapsed module whose accuracy on μ still passes)}."""
    reasons, notes, did_not_learn, collapsed = [], [], False, False
    for r in modules:
        name = f"module {r['stage'] + 1}"
        learned = True
        if r.get("accuracy") is not None:
            floor = r["chance"] + rule.min_accuracy_gain * (1 - r["chance"])
            if r["accuracy"] < floor:
                learned, did_not_learn = False, True
                reasons.append(f"{name} did not learn: held-out NCE accuracy {100 * r['accuracy']:.1f} % < "
                               f"{100 * floor:.1f} % (chance {100 * r['chance']:.1f} % + {rule.min_accuracy_gain:g} "
                               f"of the way to 100 %)")
        n_active = _active_kl(r)
        if r.get("probabilistic") and n_active is not None and n_active < rule.min_active_units:
            collapsed = True
            reasons.append(f"{name} collapsed: {n_active} of {r['width']} units with mean KL > "
                           f"{rule.active_threshold:g} nats (< {rule.min_active_units})")
            if learned and r.get("accuracy") is not None:
                notes.append(f"{name}: no active unit, yet held-out accuracy {100 * r['accuracy']:.1f} % on μ: "
                             f"the NCE reads differences in μ below {rule.active_threshold:g} nats, which samples "
                             "would drown; counted as collapsed (the paper's criterion is the posterior)")
    verdict = BOTH if (collapsed and did_not_learn) else COLLAPSED if collapsed else \
        DID_NOT_LEARN if did_not_learn else OK
    return {"verdict": verdict, "did_not_learn": did_not_learn, "collapsed": collapsed, "passed": verdict == OK,
            "reasons": reasons, "notes": notes}


def _passed(r: dict) -> bool:
    return bool(r["passed"]) if "passed" in r else not r["collapsed"]


def _verdict(r: dict) -> str:
    return r.get("verdict") or (OK if _passed(r) else COLLAPSED)


def choose_beta(results: list) -> dict:
    """results: [{"beta", "passed" (or, older records, "collapsed"), "verdict" (optional)}, ...].

    The largest β that passes with every smaller β passing. Returns {"beta": float or None, "non_monotone":
    [β that pass above a failure], "search_verdict": one of SEARCH_VERDICTS, "search_reason": str,
    "first_failure": the smallest failing β or None}. The rules are in the module docstring."""
    ordered = sorted(results, key=lambda r: r["beta"])
    if not ordered:
        raise ValueError("results must not be empty")
    chosen, first, non_mono = None, None, []
    for r in ordered:
        if not _passed(r):
            first = r if first is None else first
        elif first is not None:
            non_mono.append(r["beta"])
        else:
            chosen = r["beta"]
    if first is None:
        sv, why = SEARCH_CHOSEN, (f"every β passed; the largest, {chosen:g}, is chosen (no collapse inside the grid: "
                                  "the edge may lie above it)")
    else:
        fv, fb = _verdict(first), first["beta"]
        if chosen is not None:
            if fv == DID_NOT_LEARN:
                sv = SEARCH_CHOSEN_UNDER_TRAINED_ABOVE
                why = (f"β = {chosen:g} is the largest that passes; the next, {fb:g}, did not learn but kept active "
                       "units: the search stopped on under-training, not on collapse (longer runs may allow a "
                       "larger β)")
            elif fv == BOTH:
                sv = SEARCH_CHOSEN
                why = (f"β = {chosen:g} is the largest that passes; the next, {fb:g}, collapsed and did not learn, "
                       f"while {chosen:g} learned at the same length: the collapse is put down to β")
            else:
                sv = SEARCH_CHOSEN
                why = f"β = {chosen:g} is the largest that passes; the next, {fb:g}, collapsed"
        elif fv in (DID_NOT_LEARN, BOTH):
            sv = SEARCH_UNDER_TRAINED
            why = (f"no β chosen: the smallest, {fb:g}, did not learn" + (
                   " and kept no active unit; units that start at the prior stay there when the NCE does not learn, "
                   "so with no smaller β that learned at this length collapse cannot be told from under-training"
                   if fv == BOTH else " (its units are active: not a collapse)") + "; lengthen the runs")
        elif all(r.get("collapsed", not _passed(r)) for r in ordered):
            sv, why = SEARCH_ALL_COLLAPSED, (f"no β chosen: every β collapsed, the smallest ({fb:g}) while its "
                                             "NCE learned")
        else:
            sv, why = SEARCH_SMALLEST_COLLAPSED, (f"no β chosen: the smallest, {fb:g}, collapsed while its NCE "
                                                  "learned; a larger β did not collapse (non-monotone)")
    return {"beta": chosen, "non_monotone": non_mono, "search_verdict": sv, "search_reason": why,
            "first_failure": None if first is None else first["beta"]}


def _beta_key(beta: float) -> str:
    return f"beta_{beta:g}"


RULE_TEXT = ("per β: 'did not learn' if, in any module with a loss, held-out NCE accuracy < chance + "
             "min_accuracy_gain * (1 - chance); 'collapsed' if a probabilistic module has < min_active_units "
             "dimensions with mean KL > active_threshold nats (the paper's criterion; it wins over the accuracy); "
             "'collapsed + did not learn' if both; 'ok' otherwise. chosen: the largest β that is 'ok' with every "
             "smaller β 'ok'")
PRICE_TEXT = {"time": "price per nat = β * T_m / C_m (KL summed over the T_m frames, averaged over batch and "
                      "the C_m channels): the loss paid per nat of KL per frame in one unit of module m",
              "dims": "price per nat = β (KL summed over channels, averaged over batch and frames): the loss "
                      "paid per nat of KL per frame in one unit, in every module"}


def tune_beta(config: str, data_dir, out_dir, betas=None, epochs: int | None = DEFAULT_EPOCHS,
              overrides=(), rule: CollapseRule = CollapseRule(), progress: bool = False, log=print) -> dict:
    """Run (or resume) the sweep; returns the sweep dict also written to ``out_dir/sweep.json``.

    config: a named config or a .yaml/.json file; data_dir: a ``sim data`` folder (train split for
    training, test split for the measurements); betas: the grid (>= 0, distinct; None: ``default_betas`` of
    the config after the overrides); epochs: per run (None: the config's); overrides: ``section.key=value``
    strings applied before ``model.beta`` and ``train.epochs``.

    The sweep dict: {"settings", "rule", "rule_text", "kl_reduction", "stage_frames" [T_m], "stage_widths"
    [C_m], "price_text", "runs" (one record per β, sorted), "chosen_beta", "non_monotone", "search_verdict",
    "search_reason", "first_failure", "plot"}. A run record: {"beta", "run_dir", "steps", "seconds",
    "modules" (``heldout_metrics`` rows, each with "frames" and "price_per_nat" added), "price_per_nat"
    [per stage, None without a posterior], and ``judge``'s "verdict", "did_not_learn", "collapsed", "passed",
    "reasons", "notes"}."""

    data_dir = Path(data_dir)
    if not (data_dir / "metadata.json").is_file():
        raise ValueError(f"data {data_dir} is not a `sim data` folder (no metadata.json): the collapse test needs its "
                         "held-out test split")
    overrides = list(overrides)
    base = apply_overrides(get_config(config), overrides + ([f"train.epochs={epochs}"] if epochs else []))
    if not base.model.probabilistic:
        raise ValueError(f"config {config!r} has deterministic modules (model.probabilistic=False): β has no effect")
    betas = _checked_grid(default_betas(base) if betas is None else betas, epochs)
    geometry = stage_geometry(base)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"config": config, "epochs": base.train.epochs, "overrides": overrides,
                "data": str(data_dir.resolve()), "seed": base.train.seed}
    sweep_path = out / "sweep.json"
    runs = _previous_runs(sweep_path, settings)

    test_audio = SyllableDataset(data_dir, "test", base.data.sample_rate, base.data.length).audio
    if test_audio.shape[0] == 0:
        raise ValueError(f"data {data_dir} has an empty test split")

    log(f"[tune-beta] grid {[f'{b:g}' for b in sorted(betas)]} (kl_reduction={geometry['kl_reduction']!r}; "
        + PRICE_TEXT.get(geometry["kl_reduction"], "") + ")")
    for beta in sorted(betas):
        key = _beta_key(beta)
        if key in runs:
            log(f"[tune-beta] β = {beta:g}: done before, skipped")
            continue
        t0 = time.time()
        runs[key] = _train_and_measure(base, beta, out / key, data_dir, test_audio, rule, progress, log)
        _finish_sweep(runs, settings, rule, sweep_path, geometry)
        _log_run(log, beta, runs[key], t0)
    sweep = _finish_sweep(runs, settings, rule, sweep_path, geometry)
    log(f"[tune-beta] {sweep['search_verdict']}: {sweep['search_reason']}")
    sweep["plot"] = str(plot_sweep(sweep, out / "sweep.png"))
    atomic_write_json(sweep_path, sweep)
    return sweep


def _checked_grid(betas, epochs) -> list:
    """The β grid as floats, refused when empty, negative, not finite or repeated (and epochs < 1)."""
    betas = [float(b) for b in betas]
    if not betas:
        raise ValueError("betas must not be empty")
    if any(not math.isfinite(b) or b < 0 for b in betas):
        raise ValueError(f"betas must be finite and >= 0, got {betas}")
    if len(set(betas)) != len(betas):
        raise ValueError(f"betas must be distinct, got {betas}")
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    return betas


def _previous_runs(sweep_path: Path, settings: dict) -> dict:
    """{β key: run record} of a sweep.json written before with the same settings; {} when there is none."""
    if not sweep_path.is_file():
        return {}
    old = json.loads(sweep_path.read_text())
    if old.get("settings") != settings:
        raise ValueError(f"out {sweep_path.parent} holds a sweep with other settings ({old.get('settings')} vs "
                         f"{settings}): choose another --out")
    return {_beta_key(r["beta"]): r for r in old.get("runs", [])}


def _train_and_measure(base, beta: float, run_dir: Path, data_dir, test_audio, rule, progress, log) -> dict:
    """Train (or resume) the run of ``beta`` in ``run_dir`` and measure its modules on ``test_audio``: the run's record."""

    cfg = apply_overrides(base, [f"model.beta={beta}"])
    t0 = time.time()
    run = prepare_run(cfg, data_dir, run_dir, recorded_by="sim tune-beta", progress=progress, tensorboard=False,
                      validate=False)
    log(f"[tune-beta] β = {beta:g}: {'resuming' if run.resumed else 'training'} {cfg.name!r} for {cfg.train.epochs} "
        f"epochs -> {run_dir}")
    summary = run.fit()
    modules = heldout_metrics(run.trainer.model, test_audio, cfg.model.negative_samples, seed=cfg.train.seed,
                              active_threshold=rule.active_threshold)
    return {"beta": beta, "run_dir": run_dir.name, "steps": summary["steps"], "seconds": round(time.time() - t0, 1),
            "modules": modules}


def _finish_sweep(runs: dict, settings: dict, rule, sweep_path: Path, geometry: dict) -> dict:
    """Price every run's modules, judge every run, choose β, write sweep.json (atomically) and return the sweep."""
    ordered = sorted(runs.values(), key=lambda r: r["beta"])
    for r in ordered:
        prices = _prices(r["beta"], geometry)
        r["price_per_nat"] = prices
        for m in r["modules"]:
            m["frames"] = geometry["frames"][m["stage"]]
            m["price_per_nat"] = prices[m["stage"]]
        r.update(judge(r["modules"], rule))
    choice = choose_beta(ordered)
    sweep = {"settings": settings, "rule": asdict(rule), "rule_text": RULE_TEXT,
             "kl_reduction": geometry["kl_reduction"], "stage_frames": geometry["frames"],
             "stage_widths": geometry["widths"], "price_text": PRICE_TEXT.get(geometry["kl_reduction"], ""),
             "runs": ordered, "chosen_beta": choice["beta"], "non_monotone": choice["non_monotone"],
             "search_verdict": choice["search_verdict"], "search_reason": choice["search_reason"],
             "first_failure": choice["first_failure"]}
    atomic_write_json(sweep_path, sweep)
    return sweep


def _log_run(log, beta: float, run: dict, t0: float) -> None:
    """One line per finished run: held-out accuracy, active units (KL / Var[μ]) per module, and the verdict."""
    log(f"[tune-beta] β = {beta:g}: " + ", ".join(
        f"m{m['stage'] + 1} acc {100 * m['accuracy']:.1f} %" + (
            f" AU {m['active_units_kl']}/{m.get('active_units_variance')} of {m['width']}"
            if m.get("active_units_kl") is not None else "")
        for m in run["modules"] if m["accuracy"] is not None) + f" -> {run['verdict']} ({time.time() - t0:.0f} s)")


def _fmt_price(p) -> str:
    return "–" if p is None else f"{p:.3g}"


def plot_sweep(sweep: dict, path) -> Path:
    """Two panels against β (one evenly spaced tick per grid value, so β = 0 fits): held-out NCE accuracy
    per module with chance and the "did not learn" floor; active units per probabilistic module by the KL
    criterion (solid) and by Var_x[μ] (dashed) with its width (dotted). On the top axis: red x = collapsed,
    orange v = did not learn; the chosen β has a green line. The title gives the search verdict."""
    runs = sweep["runs"]
    xs = list(range(len(runs)))
    labels = [f"{r['beta']:g}" for r in runs]
    fig = new_figure(9, 3.8)
    ax_a, ax_u = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.82, wspace=0.25)
    n_st = len(runs[0]["modules"]) if runs else 0
    gain = sweep["rule"]["min_accuracy_gain"]
    for m in range(n_st):
        ys = [r["modules"][m]["accuracy"] for r in runs]
        if any(y is not None for y in ys):
            ax_a.plot(xs, [math.nan if y is None else 100 * y for y in ys], marker="o", ms=4, label=f"module {m + 1}")
        us = [_active_kl(r["modules"][m]) for r in runs]
        if any(u is not None for u in us):
            line, = ax_u.plot(xs, [math.nan if u is None else u for u in us], marker="o", ms=4,
                              label=f"module {m + 1}, KL > 0.01")
            vs = [r["modules"][m].get("active_units_variance") for r in runs]
            if any(v is not None for v in vs):
                ax_u.plot(xs, [math.nan if v is None else v for v in vs], marker="s", ms=3, ls="--",
                          color=line.get_color(), label=f"module {m + 1}, Var[μ] > 0.01")
            ax_u.axhline(runs[0]["modules"][m]["width"], color=line.get_color(), ls=":", lw=0.8)
    if runs:
        chance = runs[0]["modules"][-1]["chance"]
        ax_a.axhline(100 * chance, color="0.5", ls="--", lw=0.8, label="chance 1/(N+1)")
        ax_a.axhline(100 * (chance + gain * (1 - chance)), color="tab:orange", ls=":", lw=0.8,
                     label="'did not learn' floor")
    for ax in (ax_a, ax_u):
        ax.set_xticks(xs, labels, fontsize=7)
        ax.set_xlabel("β", fontsize=8)
        ax.tick_params(labelsize=7)
        for x, r in zip(xs, runs):
            if r.get("collapsed"):
                ax.plot([x], [1.0], marker="x", color="tab:red", transform=ax.get_xaxis_transform(), clip_on=False)
            if r.get("did_not_learn"):
                ax.plot([x], [1.04], marker="v", ms=4, color="tab:orange", transform=ax.get_xaxis_transform(),
                        clip_on=False)
        if sweep.get("chosen_beta") is not None:
            ax.axvline(xs[[r["beta"] for r in runs].index(sweep["chosen_beta"])], color="tab:green", lw=1.2)
    ax_a.set_ylabel("held-out NCE accuracy on μ (%)", fontsize=8)
    ax_u.set_ylabel("active units", fontsize=8)
    ax_u.set_ylim(bottom=0)
    ax_a.legend(fontsize=6)
    if ax_u.lines:
        ax_u.legend(fontsize=5)
    ch = sweep.get("chosen_beta")
    fig.suptitle(f"β sweep of {sweep['settings']['config']} ({sweep['settings']['epochs']} epochs, KL "
                 f"{sweep.get('kl_reduction', '?')}): {sweep.get('search_verdict', '')}, chosen β = "
                 f"{'none' if ch is None else f'{ch:g}'}\nred x = collapsed (no unit with KL > 0.01 nats), "
                 "orange v = did not learn", fontsize=8)
    return save_figure(fig, path)


def sweep_blocks(sweep: dict) -> list:
    """The sweep as page blocks (sim_models/util/document.py): one table row per β with the price per nat of
    every probabilistic module, each module's held-out accuracy and active units by both criteria, and the
    verdict; then the search verdict, its reason, the chosen β, the notes and a key to the columns."""
    runs = sweep["runs"]
    n_st = len(runs[0]["modules"]) if runs else 0
    prob = [any(r["modules"][m].get("probabilistic") for r in runs) for m in range(n_st)]
    priced = [m for m in range(n_st) if prob[m]]
    header = ("β", "price per nat (" + " / ".join(f"m{m + 1}" for m in priced) + ")",
              *(f"module {m + 1}" for m in range(n_st)), "verdict")
    rows = []
    for r in runs:
        prices = r.get("price_per_nat") or [None] * n_st
        cells = []
        for m in r["modules"]:
            c = "no loss" if m["accuracy"] is None else f"{100 * m['accuracy']:.1f} %"
            if _active_kl(m) is not None:
                v = m.get("active_units_variance")
                c += f", {_active_kl(m)} · {'?' if v is None else v} of {m['width']} active"
            cells.append(c)
        rows.append((f"{r['beta']:g}", " / ".join(_fmt_price(prices[m]) for m in priced), *cells, _verdict(r)))
    ch = sweep.get("chosen_beta")
    chance = runs[0]["modules"][-1]["chance"] if runs else None
    gain = sweep.get("rule", {}).get("min_accuracy_gain", 0.05)
    out = [Table(header, tuple(rows)),
           Paragraph(f"search: {sweep.get('search_verdict', '?')} — {sweep.get('search_reason', '')}"),
           Paragraph(f"chosen β: {'none' if ch is None else f'{ch:g}'}"
                     + (f"; non-monotone (pass above a failure, not chosen): {sweep['non_monotone']}"
                        if sweep.get("non_monotone") else ""))]
    notes = tuple(f"β = {r['beta']:g}: {n}" for r in runs for n in r.get("notes", []))
    if notes:
        out += [Paragraph("notes:"), Bullets(notes)]
    if chance is not None:
        out.append(Paragraph(
            f"Columns: held-out NCE accuracy on μ (chance {100 * chance:.1f} %; 'did not learn' below "
            f"{100 * (chance + gain * (1 - chance)):.1f} %); active units by mean KL > 0.01 nats · by "
            f"Var_x[μ] > 0.01, of the width ('collapsed': 0 by KL); "
            + (sweep.get("price_text") or "price per nat: loss paid per nat of KL per frame in one unit") + "."))
    return out


def sweep_table(sweep: dict) -> str:
    """``sweep_blocks`` as markdown (`sim tune-beta` prints it)."""
    return to_markdown(sweep_blocks(sweep)).rstrip("\n")
