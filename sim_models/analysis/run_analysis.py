"""Every analysis of one run, written under RUN_DIR/report/; returns a summary dict for the markdown.

Data: a ``sim data`` folder (SyllableDataset). Decoders train on the train split's utterances; every
analysis runs on the test split (utterances for traversal / interpolation / δ, syllables for the
probe's test accuracy). The vowel probe trains on the train split's syllables; t-SNE embeds the
syllables of both splits (it uses no labels).

Files (paths in the summary are relative to RUN_DIR)::

    report/decoders.pt                       trained decoders (reused unless the run or the settings changed)
    report/traversal_m{M}_dim{D}_{zero,utterance}.png, ..._s{i}.wav (one wav per step, for the HTML players)
    report/interpolation_m{M}.png, .wav (all steps), interpolation_m{M}_a{i}.wav (one per step)
    report/original_u{i}.wav, reconstruction_m{M}_u{i}.wav   the first ``audio_examples`` test utterances, decoded
    report/entanglement.json, entanglement.png
    report/concentration.png, tsne.png
    report/loss_curves.png, activations.png, active_units.png, few_labels.png   (the registered analyses,
                                                                                 registry.py)
    report/analysis.json                     every number below
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from sim_models.analysis.audio_files import write_wavs
from sim_models.analysis.concentration import plot_concentration, plot_concentration_kde, vowel_concentrations
from sim_models.analysis.decoder_training import (LogMel, decoder_convergence, load_decoders, reconstruction_errors,
                                                  save_decoders, train_decoders)
from sim_models.analysis.decoders import DECODER_PRESETS, DecoderConfig, decoder_preset, downsampling
from sim_models.analysis.entanglement import TABLE3_NS, entanglement_delta, ordered_pairs, paper_fraction_ns
from sim_models.analysis.few_labels import FEW_LABEL_SIZES
from sim_models.analysis.interpolation import interpolate_latents, plot_interpolation, write_interpolation_wav
from sim_models.analysis.plotting import new_figure, save_figure
from sim_models.analysis.registry import AnalysisContext, run_analyses
from sim_models.analysis.representations import utterance_latents
from sim_models.analysis.thesis_analyses import thesis_features
from sim_models.analysis.traversal import TRAVERSAL_RANGE, latent_traversal, plot_traversal, zero_start
from sim_models.analysis.tsne import plot_tsne, tsne_embedding
from sim_models.data.datasets import SyllableDataset
from sim_models.evaluation.probes import pooled_features, segments_tensor
from sim_models.model.encode import REPRESENTATIONS, check_representation, stochastic_stages
from sim_models.model.greedy import stage_names
from sim_models.rundir.load import load_run
from sim_models.util.atomic_write import atomic_write_json, atomic_write_text

__all__ = ["ReportConfig", "analyse_run", "REPORT_SUBDIR"]

REPORT_SUBDIR = "report"


@dataclass
class ReportConfig:
    """Settings of `sim report` / analyse_run.

    representation: what the decoders, δ and the vowel probe see. "sample" (default): z = μ + σ·ε drawn through
    every module, the SIM authors' measurement (their ``get_latents`` samples at evaluation); "mean": μ.
    The other one is computed too (``robustness_row``) and written under ``by_representation``.
    decoder_preset: None (use ``decoder`` as given), "project" or "authors" (waveform MSE, Adam 2e-4, batch 64,
    ``decoder_epochs`` or 200 epochs: the authors' Table 3 decoders, decoders.DECODER_PRESETS); it replaces
    ``decoder``'s loss, lr, batch size and epochs (its seed and mel settings are kept). decoder_epochs alone
    overrides ``decoder.epochs``.
    mean_row_decoders: "shared" (δ of the robustness row through the primary representation's decoders: no extra
    training) or "own" (a second set of decoders trained on the robustness row's representation).
    delta_utterances: test utterances for δ (every ordered pair of them; the authors used ~128 files, ≥ 100 here
    when the split has them); delta_max_pairs: a seeded subset of those pairs (None: all), for a budget.
    delta_exact: decode one latent at a time (bit-reproducible; several times slower on a CPU).
    probe_standardize: z-score the vowel probe's features (False: raw, the paper's and the authors' recipe).
    probe_sample_draws: distinct ε draws of the training syllables the "sample" probe cycles through (None: a fresh
    draw every epoch, as the authors)."""
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    representation: str = "sample"
    robustness_row: bool = True
    decoder_preset: str | None = None
    decoder_epochs: int | None = None
    mean_row_decoders: str = "shared"
    traversal_steps: int = 9
    traversal_dims: int = 2            # per module: the dims the vowel probe weighs most
    traversal_range: float = TRAVERSAL_RANGE
    interpolation_steps: int = 7
    delta_utterances: int = 100        # test utterances; every ordered pair of them (or delta_max_pairs of them)
    delta_max_pairs: int | None = None
    delta_exact: bool = False
    delta_ns: tuple = TABLE3_NS
    probe_epochs: int = 50
    probe_standardize: bool = False    # z-score features before the bias-free vowel probe (False: raw, as the paper)
    probe_sample_draws: int | None = None
    tsne_max_points: int = 800
    tsne_iterations: int = 1000
    tsne_settings: str = "ours"        # "thesis": flattened features, random init, perplexity 30, lr 200 (§4.2.2)
    activation_representation: str = "sample"  # thesis Figs 4.4-4.7 plot the modules' outputs (samples)
    activation_utterances: int = 64    # test utterances for activations and active units
    few_label_sizes: tuple = FEW_LABEL_SIZES
    few_label_seeds: int = 3
    few_label_epochs: int = 100        # thesis §4.1
    max_decoder_utterances: int | None = None  # cap the decoder training set (None: the whole train split)
    audio_examples: int = 3            # test utterances written as original vs reconstruction wavs
    retrain_decoders: bool = False
    seed: int = 0

    def __post_init__(self):
        check_representation(self.representation)
        if self.mean_row_decoders not in ("shared", "own"):
            raise ValueError(f"mean_row_decoders must be 'shared' or 'own', got {self.mean_row_decoders!r}")
        if self.decoder_preset is not None:
            if self.decoder_preset not in DECODER_PRESETS:
                raise ValueError(f"decoder_preset must be one of {tuple(DECODER_PRESETS)}, got {self.decoder_preset!r}")
            # the preset sets loss / lr / batch / epochs; the mel settings (δ on log-mels) and the seed are kept
            d = self.decoder
            self.decoder = decoder_preset(self.decoder_preset, self.decoder_epochs, seed=d.seed, n_fft=d.n_fft,
                                          hop_length=d.hop_length, n_mels=d.n_mels, log_eps=d.log_eps)
        elif self.decoder_epochs is not None:
            self.decoder = DecoderConfig(**(self.decoder.to_dict() | {"epochs": int(self.decoder_epochs)}))
        if self.delta_utterances < 2:
            raise ValueError(f"delta_utterances must be >= 2, got {self.delta_utterances}")

    @property
    def other_representation(self) -> str:
        return "mean" if self.representation == "sample" else "sample"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["delta_ns"] = list(self.delta_ns)
        d["few_label_sizes"] = list(self.few_label_sizes)
        return d


def _rel(path: Path, run_dir: Path) -> str:
    return os.path.relpath(path, run_dir)


def _decoders(run, train_audio, rcfg: ReportConfig, out: Path, log, representation: str, filename: str = "decoders.pt"):
    path = out / filename
    cfg = run.cfg
    if path.exists() and not rcfg.retrain_decoders:
        try:
            decs, dcfg, meta = load_decoders(path, cfg.model)
        except Exception as e:  # stale or foreign file: retrain
            log(f"  cannot reuse {path} ({e}); retraining")
        else:
            if (dcfg == rcfg.decoder and meta["run_steps"] == run.steps and meta["length"] == cfg.data.length
                    and meta["history"].get("representation", "mean") == representation):
                log(f"  reusing decoders from {path}")
                return decs, meta["history"]
            log(f"  {path} was trained for other settings or another checkpoint; retraining")
    log(f"  training {run.model.num_stages} decoders on {train_audio.shape[0]} utterances ({representation}) for "
        f"{rcfg.decoder.epochs} epochs (loss {rcfg.decoder.loss}, lr {rcfg.decoder.lr:g}, batch {rcfg.decoder.batch_size})")
    decs, hist = train_decoders(run.model, train_audio, rcfg.decoder, cfg.data.sample_rate,
                                representation=representation)
    save_decoders(path, decs, rcfg.decoder, cfg.data.length, cfg.data.sample_rate, run.steps, hist)
    return decs, hist


def _interpolation_pair(test_set) -> tuple:
    """The first two test utterances with different words (or 0, 1)."""
    words = [it["word"] for it in test_set.items]
    for j in range(1, len(words)):
        if words[j] != words[0]:
            return 0, j
    return 0, 1


def _plot_delta(results: dict, path, title: str):
    """results: {column name: {space: entanglement_delta result}}. A column "<module> (<representation>)" (the
    robustness row) is drawn dashed in its module's colour; dotted verticals mark the paper's 1/64 and 1/8."""
    fig = new_figure(7.5, 3.4)
    axes = fig.subplots(1, 2, sharey=True, squeeze=False)[0]
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.82, wspace=0.08)
    suffixes = tuple(f" ({r})" for r in REPRESENTATIONS)
    for ax, space in zip(axes, ("waveform", "mel")):
        colours, fractions = {}, {}
        for name, per_space in results.items():
            r = per_space[space]
            base = next((name[:-len(s)] for s in suffixes if name.endswith(s)), name)
            robustness = base != name
            if base not in colours:
                colours[base] = f"C{len(colours) % 10}"
            ax.plot(r["ns"], r["delta"], marker="o", ms=3, label=name, color=colours[base], ls="--" if robustness else "-",
                    alpha=0.8 if robustness else 1.0)
            for k, v in (r.get("paper_fraction") or {}).items():
                if k != "width":
                    fractions.setdefault(v["n"], k)
        for n, k in fractions.items():
            ax.axvline(n, color="0.6", ls=":", lw=0.8)
            ax.text(n, 1.0, f" {k}", fontsize=6, color="0.4", va="top")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N swapped dimensions", fontsize=8)
        ax.set_title("δ on the waveform" if space == "waveform" else "δ on log-mel spectrograms", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("δ", fontsize=8)
    axes[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def analyse_run(run_dir, data_dir, rcfg: ReportConfig | None = None, log=print) -> dict:
    """Run every analysis on one trained run. Returns the summary (also saved as report/analysis.json).

    Per module, ``concentration`` and ``entanglement`` hold the primary representation's results
    (``rcfg.representation``, recorded as ``representation``); ``by_representation`` holds both
    ({"sample": {"concentration", "entanglement"}, "mean": {...}}; with ``robustness_row=False`` only the
    primary). A module whose output does not depend on ε (no probabilistic module up to it) has one result,
    computed once, under both names (``sample_equals_mean``: true)."""
    rcfg = rcfg or ReportConfig()
    run = load_run(run_dir)
    cfg, model, rd = run.cfg, run.model, run.run_dir
    out = rd / REPORT_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_files(out)
    sr, length = cfg.data.sample_rate, cfg.data.length
    names = stage_names(model)
    primary, other = rcfg.representation, rcfg.other_representation
    stochastic = stochastic_stages(model)
    reps = [primary] + ([other] if rcfg.robustness_row and any(stochastic) else [])
    log(f"[report] {rd} ({cfg.name}, {run.steps} steps): {', '.join(names)}; representation {primary}"
        + (f" (+ {other} as the robustness row)" if len(reps) > 1 else ""))

    train_set = SyllableDataset(data_dir, "train", sr, length)
    test_set = SyllableDataset(data_dir, "test", sr, length)
    if len(test_set) < 2:
        raise ValueError(f"{data_dir}: the test split needs at least 2 utterances for interpolation and δ, "
                         f"got {len(test_set)}")
    train_audio = train_set.audio
    if rcfg.max_decoder_utterances:
        train_audio = train_audio[:rcfg.max_decoder_utterances]

    decoders = {primary: _decoders(run, train_audio, rcfg, out, log, primary)}
    if len(reps) > 1:
        decoders[other] = (_decoders(run, train_audio, rcfg, out, log, other, f"decoders_{other}.pt")
                           if rcfg.mean_row_decoders == "own" else decoders[primary])
    decs, history = decoders[primary]
    recon = reconstruction_errors(model, decs, test_set.audio[:64], rcfg.decoder, sr, representation=primary,
                                  seed=rcfg.seed)
    feats = _syllable_features(model, cfg, train_set, test_set, log, reps, rcfg)

    n_delta = min(rcfg.delta_utterances, len(test_set))
    ia, ib = _interpolation_pair(test_set)
    n_audio = min(rcfg.audio_examples, len(test_set))
    n_lat = min(len(test_set), max(n_delta, ib + 1, n_audio))
    log(f"  latents of {n_lat} test utterances ({', '.join(reps)}; one ε per utterance)")
    latents = {r: utterance_latents(model, test_set.audio[:n_lat], r, seed=rcfg.seed) for r in reps}
    n_pairs = len(ordered_pairs(n_delta, rcfg.delta_max_pairs, rcfg.seed))
    conv = decoder_convergence(history)
    summary = {"run": str(rd), "name": run.name, "config": cfg.name, "steps": run.steps, "data": str(data_dir),
               "report_config": rcfg.to_dict(), "representation": primary, "representations": reps,
               "modules": [], "files": {}, "decoder_history": history,
               "decoders": {"config": rcfg.decoder.to_dict(), "preset": rcfg.decoder_preset,
                            "representation": primary, "epochs": rcfg.decoder.epochs,
                            "final_loss": [c["final_loss"] for c in conv],
                            "relative_change_last_10pct": [c["relative_change"] for c in conv],
                            "robustness_row": ("none" if len(reps) == 1 else
                                               f"{other} through the {primary}-trained decoders"
                                               if rcfg.mean_row_decoders == "shared" else f"own decoders on {other}")},
               "delta": {"utterances": n_delta, "pairs": n_pairs, "all_ordered_pairs": n_delta * (n_delta - 1),
                         "eps": "one fixed draw per utterance (seeded), carried into later modules",
                         "n_at_paper_fraction": {"rule": "the paper's N = 8 and 64 of 512 dims (1/64, 1/8 of the "
                                                         "width): max(1, round(C/64)), max(1, round(C/8))"}},
               "n_train_syllables": len(feats["seg_tr"]), "n_test_syllables": len(feats["seg_te"]),
               "interpolation_pair": [test_set.items[ia]["word"], test_set.items[ib]["word"]],
               "traversal_utterance": test_set.items[0]["word"]}
    summary["audio_examples"] = [
        {"word": test_set.items[i]["word"], "wav": _rel(p, rd)} for i, p in enumerate(write_wavs(
            [out / f"original_u{i}.wav" for i in range(n_audio)], test_set.audio[:n_audio], sr))]
    ctx = _ModuleContext(run=run, rcfg=rcfg, out=out, test_set=test_set, feats=feats, summary=summary,
                         logmel=LogMel.from_config(rcfg.decoder, sr), n_delta=n_delta, n_audio=n_audio, pair=(ia, ib),
                         latents=latents, decoders={r: d[0] for r, d in decoders.items()}, stochastic=stochastic)
    conc_panels, kde_panels, tsne_panels, delta_results = [], [], [], {}
    for m, name in enumerate(names):
        log(f"  {name}: concentration, t-SNE, traversal, interpolation, δ")
        row, conc_panel, kde_panel, tsne_panel = _analyse_module(ctx, m, name)
        row.update({"reconstruction": recon[m],
                    "decoder_final_loss": history["loss"][-1][m] if history["loss"] else None})
        summary["delta"]["n_at_paper_fraction"][name] = paper_fraction_ns(row["width"]) | {"width": row["width"]}
        conc_panels.append(conc_panel)
        kde_panels.append(kde_panel)
        tsne_panels.append(tsne_panel)
        for r, res in row["by_representation"].items():
            if r == primary or not row["sample_equals_mean"]:
                delta_results[name if r == primary else f"{name} ({r})"] = res["entanglement"]
        summary["modules"].append({k: row[k] for k in ("module", "stage", "width", "frames", "reconstruction",
                                                       "decoder_final_loss", "representation", "sample_equals_mean",
                                                       "concentration", "traversal_dims", "entanglement",
                                                       "by_representation", "files")})

    summary["thesis"] = run_analyses(AnalysisContext(run, test_set.audio, feats["flat"], out, names, rcfg, log))
    summary["files"].update(summary["thesis"]["files"])
    _write_figures(summary, run, rcfg, out, conc_panels, kde_panels, tsne_panels, delta_results, n_delta)
    atomic_write_text(out / "analysis.json", json.dumps(summary, indent=2))
    return summary


def _remove_stale_files(out: Path) -> None:
    for pattern in ("traversal_m*_dim*_*.png", "traversal_m*_dim*_*.wav", "interpolation_m*_a*.wav",
                    "reconstruction_m*_u*.wav", "original_u*.wav"):  # an earlier report may have shown other dims
        for stale in out.glob(pattern):
            stale.unlink()


class _SampleDraws:
    """draw(epoch) -> pooled training-syllable features of every module under one ε draw: a fresh draw per epoch
    (``k`` = None) or epoch % k (cached). Draw d: Generator(seed·1_000_003 + 7919·d + 1)."""

    def __init__(self, model, audio, representation: str, seed: int, k: int | None):
        self.model, self.audio, self.representation, self.seed, self.k = model, audio, representation, seed, k
        self._cache = {}

    def __call__(self, epoch: int) -> list:
        d = epoch if not self.k else epoch % self.k
        if d not in self._cache:
            x = pooled_features(self.model, self.audio, representation=self.representation,
                                generator=torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * d + 1))
            if d == 0 or self.k:
                self._cache[d] = x
            return x
        return self._cache[d]


def _syllable_features(model, cfg, train_set, test_set, log, reps, rcfg) -> dict:
    """Syllable features: the train split for the probe, the test split for its accuracy, both for t-SNE.
    Keys: seg_tr / seg_te (segments), v_tr / v_te (vowel labels), a_tr (train syllable audio), f_tr / f_te
    ({representation: [pooled (S, C_m) per module]}; "sample": the train features are draw 0, the test features
    one draw), draws ({representation: epoch -> train features}), flat (thesis_features: few-label probes,
    thesis t-SNE)."""
    seg_tr, seg_te = train_set.syllable_segments(), test_set.syllable_segments()
    longest = max(s[0].shape[0] for s in seg_tr + seg_te)
    mult = downsampling(cfg.model)
    seg_len = -(-longest // mult) * mult
    a_tr, _, v_tr = segments_tensor(seg_tr, length=seg_len)
    a_te, _, v_te = segments_tensor(seg_te, length=seg_len)
    log(f"  features of {len(seg_tr)} train / {len(seg_te)} test syllables ({', '.join(reps)})")
    draws, f_tr, f_te = {}, {}, {}
    for r in reps:
        if r == "sample":
            draws[r] = _SampleDraws(model, a_tr, r, rcfg.seed, rcfg.probe_sample_draws)
            f_te[r] = pooled_features(model, a_te, representation=r,
                                      generator=torch.Generator().manual_seed(rcfg.seed * 1_000_003 + 2))
        else:
            fixed = pooled_features(model, a_tr, representation=r)
            draws[r] = (lambda e, fixed=fixed: fixed)
            f_te[r] = pooled_features(model, a_te, representation=r)
        f_tr[r] = draws[r](0)
    flat = thesis_features(model, seg_tr, seg_te)
    return {"seg_tr": seg_tr, "seg_te": seg_te, "v_tr": v_tr, "v_te": v_te, "f_tr": f_tr, "f_te": f_te,
            "draws": draws, "flat": flat, "concentration": {}}


@dataclass
class _ModuleContext:
    """What every module's analyses share (analyse_run builds it once)."""
    run: object
    rcfg: ReportConfig
    out: Path
    test_set: object
    feats: dict
    summary: dict
    logmel: object
    n_delta: int
    n_audio: int
    pair: tuple
    latents: dict          # {representation: [(U, T_m, C_m) per stage]}, one ε per utterance
    decoders: dict         # {representation: [decoder per stage]}
    stochastic: list       # per stage: does its output depend on ε


_CONC_KEYS = ("train_accuracy", "test_accuracy", "top10_mass", "scaled_top10_mass", "frac_above_half", "hist", "kde")


def _concentrations(ctx: _ModuleContext, rep: str) -> list:
    """The vowel probes of every module on ``rep`` (trained side by side, once per representation)."""
    cache = ctx.feats["concentration"]
    if rep not in cache:
        rcfg, feats = ctx.rcfg, ctx.feats
        cache[rep] = vowel_concentrations(feats["draws"][rep], feats["v_tr"], feats["f_te"][rep], feats["v_te"],
                                          epochs=rcfg.probe_epochs, seed=rcfg.seed, standardize=rcfg.probe_standardize)
    return cache[rep]


def _analyse_module(ctx: _ModuleContext, m: int, name: str) -> tuple:
    """Concentration, t-SNE, traversal, interpolation, reconstructions and δ of module m.
    Returns (summary row without reconstruction / decoder loss, concentration panel, KDE panel, t-SNE panel)."""
    rcfg, feats, model = ctx.rcfg, ctx.feats, ctx.run.model
    primary = rcfg.representation
    reps = list(ctx.latents)
    same = not ctx.stochastic[m]
    by_rep, concs = {}, {}
    for r in reps:
        if same and r != primary:
            continue
        conc = _concentrations(ctx, r)[m]
        latents = ctx.latents[r][m]
        delta = {space: entanglement_delta(ctx.decoders[r][m], latents[:ctx.n_delta], rcfg.delta_ns, space=space,
                                           logmel=ctx.logmel, max_pairs=rcfg.delta_max_pairs, pair_seed=rcfg.seed,
                                           exact=rcfg.delta_exact)
                 for space in ("waveform", "mel")}
        concs[r] = conc
        by_rep[r] = {"concentration": {k: conc[k] for k in _CONC_KEYS}
                     | {"representation": r, "standardized": rcfg.probe_standardize,
                        "fresh_eps_per_epoch": r == "sample" and ctx.stochastic[m] and not rcfg.probe_sample_draws,
                        "signed_minmax": conc["signed_minmax"].tolist()},
                     "entanglement": delta}
    if same:   # ε does not reach this module: sample and mean are one tensor, computed once
        for r in (("sample", "mean") if rcfg.robustness_row else (primary,)):
            by_rep[r] = by_rep[primary]
            concs.setdefault(r, concs[primary])
    conc = concs[primary]
    flat = feats["flat"]
    feats_all = (torch.cat([feats["f_tr"][primary][m], feats["f_te"][primary][m]]) if rcfg.tsne_settings != "thesis"
                 else torch.cat([flat[0][m], flat[2][m]]))
    emb, kept = tsne_embedding(feats_all, rcfg.tsne_max_points, rcfg.seed, max_iter=rcfg.tsne_iterations,
                               settings=rcfg.tsne_settings)
    tsne_panel = (name, emb, torch.cat([feats["v_tr"], feats["v_te"]]).numpy()[kept])
    latents = ctx.latents[primary][m]                                                        # (U, T, C)
    dec = ctx.decoders[primary][m]
    dims = torch.argsort(conc["dim_importance"], descending=True, stable=True)[:rcfg.traversal_dims].tolist()
    files = {"traversal": _traversal_files(ctx, m, name, dec, latents, dims)}
    files.update(_interpolation_files(ctx, m, name, dec, latents))
    if ctx.n_audio:
        with torch.no_grad():
            rec = dec(latents[:ctx.n_audio])
        files["reconstruction"] = [_rel(w, ctx.run.run_dir) for w in write_wavs(
            [ctx.out / f"reconstruction_m{m + 1}_u{i}.wav" for i in range(ctx.n_audio)], rec, ctx.run.cfg.data.sample_rate)]
    row = {"module": name, "stage": m, "width": latents.shape[2], "frames": latents.shape[1],
           "representation": primary, "sample_equals_mean": same,
           "concentration": by_rep[primary]["concentration"], "entanglement": by_rep[primary]["entanglement"],
           "by_representation": by_rep, "traversal_dims": dims, "files": files}
    return row, (name, conc), (name, {r: concs[r] for r in concs if not (same and r != primary)}), tsne_panel


def _traversal_files(ctx: _ModuleContext, m: int, name: str, dec, latents, dims) -> list:
    """Traversals of module m's ``dims`` from the zero vector and from the first test utterance: png + wavs."""
    cfg, rcfg, out, rd, run = ctx.run.cfg, ctx.rcfg, ctx.out, ctx.run.run_dir, ctx.run
    sr, length, width = cfg.data.sample_rate, cfg.data.length, latents.shape[2]
    files = []
    for d in dims:
        for start_name, start in (("zero", zero_start(cfg.model, m, length, width)), ("utterance", latents[0])):
            res = latent_traversal(dec, start, d, rcfg.traversal_steps, rcfg.traversal_range, sr)
            p = plot_traversal(res, out / f"traversal_m{m + 1}_dim{d}_{start_name}.png",
                               f"{run.name}, {name}: dimension {d}, start = "
                               + ("zero vector" if start_name == "zero"
                                  else f"'{ctx.summary['traversal_utterance']}'"), sr)
            wavs = write_wavs([out / f"traversal_m{m + 1}_dim{d}_{start_name}_s{i}.wav"
                               for i in range(len(res["values"]))], res["waveforms"], sr)
            files.append({"dim": d, "start": start_name, "png": _rel(p, rd),
                          "wavs": [{"value": float(v), "wav": _rel(w, rd)} for v, w in zip(res["values"], wavs)]})
    return files


def _interpolation_files(ctx: _ModuleContext, m: int, name: str, dec, latents) -> dict:
    """The interpolation between the test pair in module m's latent space: png, wav, one wav per step."""
    out, rd, run, sr = ctx.out, ctx.run.run_dir, ctx.run, ctx.run.cfg.data.sample_rate
    ia, ib = ctx.pair
    test_set = ctx.test_set
    res = interpolate_latents(dec, latents[ia], latents[ib], ctx.rcfg.interpolation_steps)
    words = ctx.summary["interpolation_pair"]
    files = {"interpolation_png": _rel(plot_interpolation(
        res, out / f"interpolation_m{m + 1}.png", f"{run.name}, {name}: '{words[0]}' → '{words[1]}'", sr,
        (test_set.audio[ia], test_set.audio[ib])), rd)}
    files["interpolation_wav"] = _rel(write_interpolation_wav(res, out / f"interpolation_m{m + 1}.wav", sr), rd)
    files["interpolation_steps"] = [{"alpha": float(a), "wav": _rel(w, rd)} for a, w in zip(res["alphas"], write_wavs(
        [out / f"interpolation_m{m + 1}_a{i}.wav" for i in range(len(res["alphas"]))], res["waveforms"], sr))]
    return files


def _write_figures(summary, run, rcfg, out, conc_panels, kde_panels, tsne_panels, delta_results, n_delta) -> None:
    """The run-level figures (concentration, its KDE, t-SNE, δ) and entanglement.json; their paths into
    summary["files"]."""
    rd = run.run_dir
    rep = rcfg.representation
    summary["files"]["concentration_png"] = _rel(plot_concentration(
        conc_panels, out / "concentration.png", title=f"{run.name}: vowel classifier weights ({rep})"), rd)
    summary["files"]["concentration_kde_png"] = _rel(plot_concentration_kde(
        kde_panels, out / "concentration_kde.png",
        title=f"{run.name}: vowel classifier weights, signed min-max per class (KDE)"), rd)
    summary["files"]["tsne_png"] = _rel(plot_tsne(tsne_panels, out / "tsne.png", title=f"{run.name}: t-SNE of syllables "
                                                  f"({rcfg.tsne_settings} settings, {rep})"), rd)
    summary["files"]["entanglement_png"] = _rel(_plot_delta(delta_results, out / "entanglement.png",
                                                            f"{run.name}: entanglement δ ({rep}"
                                                            + (f"; dashed: {rcfg.other_representation})"
                                                               if len(summary["representations"]) > 1 else ")")), rd)
    ent_json = {"definition": "delta(N) = sum_pairs ||D(z_swap_N) - D(z_b)||^2 / sum_pairs ||D(z_a) - D(z_b)||^2, "
                              "clipped to [0, 1]; top-N dims by squared difference of time-averaged latents, "
                              "swapped in every frame",
                "representation": rep, "utterances": n_delta, "pairs": summary["delta"]["pairs"],
                "n_at_paper_fraction": summary["delta"]["n_at_paper_fraction"], "modules": delta_results}
    atomic_write_json(out / "entanglement.json", ent_json)
    summary["files"]["entanglement_json"] = _rel(out / "entanglement.json", rd)
