"""`sim report RUN_DIR [RUN_DIR ...] --data DIR`

decoders, latent traversal, interpolation, entanglement δ, vowel concentration, t-SNE, loss curves, activations,
active units, few-label probes

Writes RUN_DIR/report.html (the main output: figures, numbers and audio players) and RUN_DIR/report.md (figures
and numbers in RUN_DIR/report/) for each run; with several runs every report also compares them side by side.
Heavy imports (matplotlib, scikit-learn) happen only when an analysis draws or fits.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from sim_models.analysis.decoders import DECODER_PRESETS, DecoderConfig
from sim_models.analysis.run_analysis import ReportConfig, analyse_run
from sim_models.analysis.verdicts import verdicts_from_json
from sim_models.cli.common import add_command, set_threads
from sim_models.model.encode import REPRESENTATIONS
from sim_models.report.write import write_reports
from sim_models.rundir.run_info import resolve_data

__all__ = ["add_parser", "run_report", "config_from_args"]



def add_parser(subparsers):
    r = add_command(subparsers, "report", __doc__)
    r.add_argument("runs", nargs="+", metavar="RUN_DIR", help="`sim train --out` folders")
    r.add_argument("--data", help="a `sim data` folder (syllable labels and boundaries); default: the data each run "
                                  "was trained on (RUN_DIR/run_info.json, recorded by `sim train`)")
    r.add_argument("--out", help="also write a stand-alone side-by-side comparison markdown file here")
    r.add_argument("--verdicts", metavar="JSON", help="a verdicts file (sim_models/analysis/verdicts.py, "
                   "verdicts_to_json) to show as a Verdicts section in every report")
    r.add_argument("--representation", choices=REPRESENTATIONS, default="sample",
                   help="what the decoders, δ and the vowel probe see: sample = z = mu + sigma * eps drawn through every "
                        "module (the SIM authors' measurement, default), mean = mu; the other is reported as a "
                        "robustness row unless --no-robustness-row")
    r.add_argument("--no-robustness-row", action="store_true", help="analyse the chosen representation only")
    g = r.add_argument_group("decoders")
    g.add_argument("--decoder-preset", choices=tuple(DECODER_PRESETS), default=None,
                   help="authors: waveform MSE, Adam 2e-4, batch 64, 200 epochs unless --decoder-epochs (the SIM "
                        "authors' Table 3 decoders); replaces the loss / lr / batch options below")
    g.add_argument("--mean-row-decoders", choices=("shared", "own"), default="shared",
                   help="robustness row's δ through the primary representation's decoders (shared) or its own")
    g.add_argument("--decoder-epochs", type=int, default=None, help="default: 20 (200 with --decoder-preset authors)")
    g.add_argument("--decoder-loss", choices=("mel", "mse", "mse+mel"), default="mel")
    g.add_argument("--decoder-lr", type=float, default=1e-3)
    g.add_argument("--decoder-batch-size", type=int, default=16)
    g.add_argument("--mel-weight", type=float, default=1.0, help="weight of the mel term in 'mse+mel'")
    g.add_argument("--n-fft", type=int, default=4096)
    g.add_argument("--hop-length", type=int, default=2048)
    g.add_argument("--n-mels", type=int, default=128)
    g.add_argument("--max-decoder-utterances", type=int, default=None, help="cap the decoder training set")
    g.add_argument("--retrain-decoders", action="store_true", help="ignore RUN_DIR/report/decoders.pt")
    a = r.add_argument_group("analyses")
    a.add_argument("--traversal-steps", type=int, default=9)
    a.add_argument("--traversal-dims", type=int, default=2)
    a.add_argument("--interpolation-steps", type=int, default=7)
    a.add_argument("--audio-examples", type=int, default=3,
                   help="test utterances written as original vs reconstruction wavs (HTML players)")
    a.add_argument("--delta-utterances", type=int, default=100,
                   help="test utterances for δ, every ordered pair of them (the authors: ~128)")
    a.add_argument("--delta-max-pairs", type=int, default=None, help="a seeded subset of those pairs (for a budget)")
    a.add_argument("--probe-epochs", type=int, default=50)
    a.add_argument("--probe-standardize", action="store_true",
                   help="z-score the vowel probe's features with the train split's statistics (default: raw, as the "
                        "paper and the SIM authors' code)")
    a.add_argument("--probe-raw", action="store_true", help="raw features (the default; kept for old command lines)")
    a.add_argument("--probe-sample-draws", type=int, default=None,
                   help="distinct eps draws the sampled probe cycles through (default: a fresh draw every epoch)")
    a.add_argument("--tsne-max-points", type=int, default=800)
    a.add_argument("--tsne-iterations", type=int, default=1000, help="scikit-learn max_iter (>= 250)")
    a.add_argument("--tsne-settings", choices=("ours", "thesis"), default="ours",
                   help="thesis: flattened syllable features, random init, perplexity 30, learning rate 200, 1000 "
                        "iterations (thesis §4.2.2); ours: time averages, PCA init")
    a.add_argument("--activation-representation", choices=REPRESENTATIONS, default="sample",
                   help="activations.png: samples z (thesis Figs 4.4-4.7) or mu")
    a.add_argument("--activation-utterances", type=int, default=64,
                   help="test utterances for activations.png and active units")
    a.add_argument("--few-label-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128],
                   help="labelled syllables per class (thesis §4.3: 1 ... 128)")
    a.add_argument("--few-label-seeds", type=int, default=3)
    a.add_argument("--few-label-epochs", type=int, default=100, help="thesis §4.1: 100")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    r.set_defaults(func=run_report)
    return r


def config_from_args(args) -> ReportConfig:
    """The ReportConfig of the parsed `sim report` arguments."""
    dcfg = DecoderConfig(loss=args.decoder_loss, n_fft=args.n_fft, hop_length=args.hop_length, n_mels=args.n_mels,
                         mel_weight=args.mel_weight, lr=args.decoder_lr,
                         epochs=20 if args.decoder_epochs is None else args.decoder_epochs,
                         batch_size=args.decoder_batch_size, seed=args.seed)

    return ReportConfig(decoder=dcfg, traversal_steps=args.traversal_steps, traversal_dims=args.traversal_dims,
                        interpolation_steps=args.interpolation_steps, delta_utterances=args.delta_utterances,
                        probe_epochs=args.probe_epochs, probe_standardize=args.probe_standardize,
                        probe_sample_draws=args.probe_sample_draws, representation=args.representation,
                        robustness_row=not args.no_robustness_row, mean_row_decoders=args.mean_row_decoders,
                        delta_max_pairs=args.delta_max_pairs, decoder_preset=args.decoder_preset,
                        decoder_epochs=args.decoder_epochs if args.decoder_preset else None,
                        tsne_max_points=args.tsne_max_points,
                        tsne_iterations=args.tsne_iterations, tsne_settings=args.tsne_settings,
                        activation_representation=args.activation_representation,
                        activation_utterances=args.activation_utterances,
                        few_label_sizes=tuple(args.few_label_sizes), few_label_seeds=args.few_label_seeds,
                        few_label_epochs=args.few_label_epochs,
                        max_decoder_utterances=args.max_decoder_utterances, retrain_decoders=args.retrain_decoders,
                        audio_examples=args.audio_examples,
                        seed=args.seed)


def run_report(args) -> int:
    set_threads(args.threads)
    verdicts = None
    if getattr(args, "verdicts", None):
        verdicts = verdicts_from_json(Path(args.verdicts).read_text())
    rcfg = config_from_args(args)
    t0 = time.time()
    try:
        data = [resolve_data(run, args.data) for run in args.runs]
    except ValueError as e:
        print(f"sim report: error: {e}", file=sys.stderr)
        return 2
    summaries = [analyse_run(run, d, rcfg) for run, d in zip(args.runs, data)]
    for path in write_reports(summaries, args.out, verdicts):
        print(f"wrote {path}")
    print(f"report done in {time.time() - t0:.0f} s")
    return 0
