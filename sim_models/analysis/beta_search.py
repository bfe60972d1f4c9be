"""`sim tune-beta`: the paper's choice of β, automated.

The SIM paper picks β as "the largest value that does not make the posteriors collapse to the prior"
(DESIGN.md §1). ``tune_beta`` trains one short run per β of a grid (same config, data, seed and
epochs; only ``model.beta`` differs), measures every run on the **held-out (test) split** of a
``sim data`` folder, applies the collapse test below, and picks β.

Measurements per module, on the test split, model in eval mode (μ, no sampling; a fixed generator for
the negatives):

* ``accuracy``: the Smooth-InfoNCE prediction accuracy, the share of anchors whose positive outscores
  all N negatives (a tie counts as wrong), averaged over the K steps; chance is 1/(N+1).
* ``active_units``: dimensions whose mean KL to the N(0, 1) prior exceeds 0.01 nats
  (``active_units.active_units``, criterion "kl"); probabilistic modules only.

**Collapse test** (``CollapseRule``; our definition, fixed before any sweep was run, not tuned to a
result). A run *collapses* if, in any module,

1. its held-out accuracy is below ``chance + min_accuracy_gain · (1 − chance)``, with
   ``min_accuracy_gain = 0.05``: it predicts the future frame barely better than guessing (for N = 10:
   below 13.6 % against a chance of 9.1 %); or
2. a probabilistic module keeps fewer than ``min_active_units = 1`` active units: every dimension's
   posterior equals the prior, the definition of posterior collapse.

**Choice**: the largest β of the grid such that it *and every smaller β* pass (collapse is expected to
grow with β; a pass above a failure is reported as non-monotone and not chosen). None if the smallest
β already collapses. The rule is re-applied to the stored numbers on every call, so changing it needs no
retraining.

Files under ``out``::

    beta_<β>/          a normal `sim train` run folder per β (config.yaml, checkpoint.pt, metrics, run_info.json)
    sweep.json         settings, every β's measurements and verdict, the chosen β (written after each β, atomically)
    sweep.png          held-out NCE accuracy and active units against β

Resumable: a β whose measurements are in sweep.json is skipped; a β whose training was interrupted
resumes from its checkpoint. A sweep folder made with other settings (config, epochs, overrides, data)
is refused rather than mixed.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .active_units import ACTIVE_THRESHOLD, active_units, kl_per_dimension
from ..atomic_write import atomic_write_text

__all__ = ["DEFAULT_BETAS", "DEFAULT_EPOCHS", "CollapseRule", "heldout_metrics", "judge", "choose_beta", "tune_beta",
           "plot_sweep", "sweep_table"]

# 0 (no KL), the V-GIM thesis' 0.0035 and the paper's 0.01 inside a roughly geometric grid up to 0.02.
DEFAULT_BETAS = (0.0, 0.0003, 0.001, 0.002, 0.0035, 0.005, 0.01, 0.02)
DEFAULT_EPOCHS = 3  # "short runs": enough to see a collapse, not to train a model; raise it for a real search


@dataclass(frozen=True)
class CollapseRule:
    """See the module docstring. min_accuracy_gain: share of the way from chance to 100 % the held-out
    accuracy must reach in every module; min_active_units: active units every probabilistic module keeps;
    active_threshold: nats of mean KL that make a dimension active."""
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


@torch.no_grad()
def heldout_metrics(model, audio: torch.Tensor, negative_samples: int, batch_size: int = 32, seed: int = 0,
                    active_threshold: float = ACTIVE_THRESHOLD) -> list:
    """Per-module held-out measurements of a GreedyModel on ``audio`` (N, L).

    Returns one dict per stage: {"stage", "probabilistic", "width", "accuracy" (mean over k, or None for a
    stage without a loss), "nce", "chance" (1/(N+1)), "active_units" (None if deterministic), "kl_mean" (nats
    per dimension, averaged), "kl_per_dim" (list, C)}. Model left in the mode it was in."""
    if audio.dim() != 2 or audio.shape[0] == 0:
        raise ValueError(f"audio must be a non-empty (N, L) tensor, got {tuple(audio.shape)}")
    was_training = model.training
    model.eval()
    try:
        g = torch.Generator().manual_seed(seed)
        n_st = model.num_stages
        acc, nce, weight = [0.0] * n_st, [0.0] * n_st, [0] * n_st
        mus, logvars = [[] for _ in range(n_st)], [[] for _ in range(n_st)]
        for i in range(0, audio.shape[0], batch_size):
            batch = audio[i:i + batch_size]
            for r in model.losses_for(batch, list(range(n_st)), generator=g):
                acc[r.index] += float(r.metrics["accuracy"].mean()) * batch.shape[0]
                nce[r.index] += float(r.metrics["nce"].mean()) * batch.shape[0]
                weight[r.index] += batch.shape[0]
            for m, out in enumerate(model.encode(batch)):
                if out.mu is not None:
                    mus[m].append(out.mu)
                    logvars[m].append(out.logvar)
    finally:
        model.train(was_training)
    chance = 1.0 / (negative_samples + 1)
    rows = []
    for m in range(n_st):
        prob = bool(mus[m])
        row = {"stage": m, "probabilistic": prob, "width": int(model.stages[m].out_channels),
               "accuracy": acc[m] / weight[m] if weight[m] else None, "nce": nce[m] / weight[m] if weight[m] else None,
               "chance": chance, "active_units": None, "kl_mean": None, "kl_per_dim": None}
        if prob:
            mu, lv = torch.cat(mus[m]), torch.cat(logvars[m])
            kl = kl_per_dimension(mu, lv)
            row.update(active_units=active_units(mu, lv, "kl", active_threshold), kl_mean=float(kl.mean()),
                       kl_per_dim=[float(x) for x in kl])
        rows.append(row)
    return rows


def judge(modules: list, rule: CollapseRule = CollapseRule()) -> dict:
    """Apply the collapse test to one run's ``heldout_metrics`` rows. Returns {"collapsed": bool, "reasons": [str]}."""
    reasons = []
    for r in modules:
        name = f"module {r['stage'] + 1}"
        if r.get("accuracy") is not None:
            floor = r["chance"] + rule.min_accuracy_gain * (1 - r["chance"])
            if r["accuracy"] < floor:
                reasons.append(f"{name}: held-out NCE accuracy {100 * r['accuracy']:.1f} % < {100 * floor:.1f} % "
                               f"(chance {100 * r['chance']:.1f} % + {rule.min_accuracy_gain:g} of the way to 100 %)")
        if r.get("probabilistic") and r.get("active_units") is not None and r["active_units"] < rule.min_active_units:
            reasons.append(f"{name}: {r['active_units']} active units of {r['width']} "
                           f"(< {rule.min_active_units}; KL > {rule.active_threshold:g} nats)")
    return {"collapsed": bool(reasons), "reasons": reasons}


def choose_beta(results: list) -> dict:
    """results: [{"beta", "collapsed"}, ...]. The largest β that passes with every smaller β passing.
    Returns {"beta": float or None, "non_monotone": [β that pass above a collapsed β]}."""
    chosen, failed_below, non_mono = None, False, []
    for r in sorted(results, key=lambda r: r["beta"]):
        if r["collapsed"]:
            failed_below = True
        elif failed_below:
            non_mono.append(r["beta"])
        else:
            chosen = r["beta"]
    return {"beta": chosen, "non_monotone": non_mono}


def _beta_key(beta: float) -> str:
    return f"beta_{beta:g}"


def _atomic_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def tune_beta(config: str, data_dir, out_dir, betas=DEFAULT_BETAS, epochs: int | None = DEFAULT_EPOCHS,
              overrides=(), rule: CollapseRule = CollapseRule(), progress: bool = False, log=print) -> dict:
    """Run (or resume) the sweep; returns the sweep dict also written to ``out_dir/sweep.json``.

    config: a named config or a .yaml/.json file; data_dir: a ``sim data`` folder (train split for
    training, test split for the measurements); betas: the grid (>= 0, distinct); epochs: per run (None:
    the config's); overrides: ``section.key=value`` strings applied before ``model.beta`` and ``train.epochs``."""
    from ..config import apply_overrides, get_config
    from ..data.datasets import SyllableDataset

    betas = _checked_grid(betas, epochs)
    data_dir = Path(data_dir)
    if not (data_dir / "metadata.json").is_file():
        raise ValueError(f"data {data_dir} is not a `sim data` folder (no metadata.json): the collapse test needs its "
                         "held-out test split")
    overrides = list(overrides)
    base = apply_overrides(get_config(config), overrides + ([f"train.epochs={epochs}"] if epochs else []))
    if not base.model.probabilistic:
        raise ValueError(f"config {config!r} has deterministic modules (model.probabilistic=False): β has no effect")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"config": config, "epochs": base.train.epochs, "overrides": overrides,
                "data": str(data_dir.resolve()), "seed": base.train.seed}
    sweep_path = out / "sweep.json"
    runs = _previous_runs(sweep_path, settings)

    train_set = SyllableDataset(data_dir, "train", base.data.sample_rate, base.data.length)
    test_audio = SyllableDataset(data_dir, "test", base.data.sample_rate, base.data.length).audio
    if test_audio.shape[0] == 0:
        raise ValueError(f"data {data_dir} has an empty test split")

    for beta in sorted(betas):
        key = _beta_key(beta)
        if key in runs:
            log(f"[tune-beta] β = {beta:g}: done before, skipped")
            continue
        t0 = time.time()
        runs[key] = _train_and_measure(base, beta, out / key, data_dir, train_set, test_audio, rule, progress, log)
        _finish_sweep(runs, settings, rule, sweep_path)
        _log_run(log, beta, runs[key], t0)
    sweep = _finish_sweep(runs, settings, rule, sweep_path)
    sweep["plot"] = str(plot_sweep(sweep, out / "sweep.png"))
    _atomic_json(sweep_path, sweep)
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


def _train_and_measure(base, beta: float, run_dir: Path, data_dir, train_set, test_audio, rule, progress, log) -> dict:
    """Train (or resume) the run of ``beta`` in ``run_dir`` and measure its modules on ``test_audio``: the run's record."""
    from ..config import apply_overrides
    from ..run_info import record_data_path
    from ..trainer import CHECKPOINT_NAME, Trainer

    cfg = apply_overrides(base, [f"model.beta={beta}"])
    t0 = time.time()
    resume = (run_dir / CHECKPOINT_NAME).is_file()
    log(f"[tune-beta] β = {beta:g}: {'resuming' if resume else 'training'} {cfg.name!r} for {cfg.train.epochs} "
        f"epochs -> {run_dir}")
    record_data_path(run_dir, data_dir, "sim tune-beta")
    trainer = Trainer(cfg, train_set, run_dir, progress=progress, tensorboard=False)
    summary = trainer.fit(resume=resume)
    modules = heldout_metrics(trainer.model, test_audio, cfg.model.negative_samples, seed=cfg.train.seed,
                              active_threshold=rule.active_threshold)
    return {"beta": beta, "run_dir": run_dir.name, "steps": summary["steps"], "seconds": round(time.time() - t0, 1),
            "modules": modules}


def _finish_sweep(runs: dict, settings: dict, rule, sweep_path: Path) -> dict:
    """Judge every run, choose β, write sweep.json (atomically) and return the sweep dict."""
    ordered = sorted(runs.values(), key=lambda r: r["beta"])
    for r in ordered:
        r.update(judge(r["modules"], rule))
    choice = choose_beta(ordered)
    sweep = {"settings": settings, "rule": asdict(rule),
             "rule_text": "collapsed if, in any module, held-out NCE accuracy < chance + min_accuracy_gain * "
                          "(1 - chance), or a probabilistic module has < min_active_units dimensions with mean KL "
                          "> active_threshold nats; chosen: the largest beta that passes with every smaller beta",
             "runs": ordered, "chosen_beta": choice["beta"], "non_monotone": choice["non_monotone"]}
    _atomic_json(sweep_path, sweep)
    return sweep


def _log_run(log, beta: float, run: dict, t0: float) -> None:
    """One line per finished run: held-out accuracy (and active units) per module and the verdict."""
    log(f"[tune-beta] β = {beta:g}: " + ", ".join(
        f"m{m['stage'] + 1} acc {100 * m['accuracy']:.1f} %" + (f" AU {m['active_units']}/{m['width']}"
                                                              if m["active_units"] is not None else "")
        for m in run["modules"] if m["accuracy"] is not None) + f" -> {'COLLAPSED' if run['collapsed'] else 'ok'} "
        f"({time.time() - t0:.0f} s)")


def plot_sweep(sweep: dict, path) -> Path:
    """Two panels against β (one evenly spaced tick per grid value, so β = 0 fits): held-out NCE accuracy
    per module with chance and the collapse floor; active units per probabilistic module with its width.
    Collapsed β values are marked with a red x on the top axis; the chosen β with a green line."""
    from .plotting import new_figure, save_figure
    runs = sweep["runs"]
    xs = list(range(len(runs)))
    labels = [f"{r['beta']:g}" for r in runs]
    fig = new_figure(9, 3.6)
    ax_a, ax_u = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.84, wspace=0.25)
    n_st = len(runs[0]["modules"]) if runs else 0
    gain = sweep["rule"]["min_accuracy_gain"]
    for m in range(n_st):
        ys = [r["modules"][m]["accuracy"] for r in runs]
        if any(y is not None for y in ys):
            ax_a.plot(xs, [math.nan if y is None else 100 * y for y in ys], marker="o", ms=4, label=f"module {m + 1}")
        us = [r["modules"][m]["active_units"] for r in runs]
        if any(u is not None for u in us):
            line, = ax_u.plot(xs, [math.nan if u is None else u for u in us], marker="o", ms=4, label=f"module {m + 1}")
            ax_u.axhline(runs[0]["modules"][m]["width"], color=line.get_color(), ls=":", lw=0.8)
    if runs:
        chance = runs[0]["modules"][-1]["chance"]
        ax_a.axhline(100 * chance, color="0.5", ls="--", lw=0.8, label="chance 1/(N+1)")
        ax_a.axhline(100 * (chance + gain * (1 - chance)), color="tab:red", ls=":", lw=0.8, label="collapse floor")
    for ax in (ax_a, ax_u):
        ax.set_xticks(xs, labels, fontsize=7)
        ax.set_xlabel("β", fontsize=8)
        ax.tick_params(labelsize=7)
        for x, r in zip(xs, runs):
            if r.get("collapsed"):
                ax.plot([x], [1.0], marker="x", color="tab:red", transform=ax.get_xaxis_transform(), clip_on=False)
        if sweep.get("chosen_beta") is not None:
            ax.axvline(xs[[r["beta"] for r in runs].index(sweep["chosen_beta"])], color="tab:green", lw=1.2)
    ax_a.set_ylabel("held-out NCE accuracy (%)", fontsize=8)
    ax_u.set_ylabel("active units (KL > 0.01 nats)", fontsize=8)
    ax_u.set_ylim(bottom=0)
    ax_a.legend(fontsize=6)
    if ax_u.lines:
        ax_u.legend(fontsize=6)
    ch = sweep.get("chosen_beta")
    fig.suptitle(f"β sweep of {sweep['settings']['config']} ({sweep['settings']['epochs']} epochs): chosen β = "
                 f"{'none (the smallest β collapses)' if ch is None else f'{ch:g}'}; x = collapsed", fontsize=9)
    return save_figure(fig, path)


def sweep_table(sweep: dict) -> str:
    """Markdown: one row per β with each module's accuracy / active units and the verdict."""
    runs = sweep["runs"]
    n_st = len(runs[0]["modules"]) if runs else 0
    head = "| β | " + " | ".join(f"module {m + 1}" for m in range(n_st)) + " | verdict |"
    lines = [head, "|---|" + "---|" * (n_st + 1)]
    for r in runs:
        cells = []
        for m in r["modules"]:
            c = "n/a" if m["accuracy"] is None else f"{100 * m['accuracy']:.1f} %"
            if m["active_units"] is not None:
                c += f", {m['active_units']}/{m['width']} active"
            cells.append(c)
        lines.append(f"| {r['beta']:g} | " + " | ".join(cells) + f" | {'collapsed' if r['collapsed'] else 'ok'} |")
    ch = sweep.get("chosen_beta")
    lines += ["", f"chosen β: {'none (the smallest β collapses)' if ch is None else f'{ch:g}'}"
              + (f"; non-monotone (pass above a collapse, not chosen): {sweep['non_monotone']}"
                 if sweep.get("non_monotone") else "")]
    return "\n".join(lines)
