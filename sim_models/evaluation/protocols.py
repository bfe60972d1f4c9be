"""Named linear-probe protocols: ``paper`` (SIM paper, Table 2), ``thesis`` (V-GIM thesis, Table 4.3), ``robust`` (ours).

| protocol | features per syllable | padding | standardised | epochs | tasks | source |
|---|---|---|---|---|---|---|
| paper  | time average of each module's output (C,) | zeros at both ends, to the longest syllable | no  | 50  | vowel (3), syllable (9) | paper §4.2, Table 2 |
| thesis | the flattened C × T output             | zeros at both ends, to 8800 samples        | no  | 100 | syllable (9)            | thesis §4.1, Table 4.3, App. A |
| robust | time average (C,)                      | zeros at the end, to the longest syllable   | yes | 50  | vowel (3), syllable (9) | ours (the earlier `sim eval` default) |

Common to all (paper §4.2 and thesis §4.1): a linear layer with bias, cross-entropy, Adam lr 1e-3,
frozen encoder, the train split's syllables train the probe, the test split's score it. Neither
source gives the probe's batch size: 64 (ours). The paper's Table 2 row is the *last* module (the
GRU); every module is reported. "robust" z-scores each feature with the train split's statistics,
which spares Adam the tiny scales of barely trained SIM means (probes.py).

Representation (``representation``, recorded in the result): ``"mean"`` probes μ (deterministic
modules give their output), ``"sample"`` a reparameterised sample z = μ + σ ε drawn through every
module (each module reads the previous one's sample; model in eval mode, ``encode(sample=True)``).
With "sample" the training syllables get a fresh ε every epoch, as in the SIM authors' code
(``ACML-2024``: the probes encode every batch anew and ``get_latents`` samples whatever the mode;
``sample_draws`` = K cycles K cached draws instead, for a budget), and the test syllables one draw.
The default is the protocol's own: "sample" for ``paper`` (the authors' measurement), "mean" for
``thesis`` and ``robust``. For a model without a probabilistic module both are the same features,
computed once.

Every protocol is repeated over ``seeds`` (default 3; the thesis used 5 repetitions): seed s sets
the probe's initialisation and batch order (and ε for "sample"); results are mean ± sample
standard deviation (ddof = 1) of the test accuracies.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from sim_models.data.segmentation import PAD_LENGTH, pad_both_ends
from sim_models.evaluation.probes import fit_linear_probes, standardizer
from sim_models.model.encode import REPRESENTATIONS, check_representation, encode_batches, stochastic_stages

__all__ = ["Protocol", "PROTOCOLS", "REPRESENTATIONS", "get_protocol", "protocol_audio", "module_features",
           "FeatureDraws", "probe_protocol", "summarise_runs"]

TASKS = {"vowel": 3, "syllable": 9}


@dataclass(frozen=True)
class Protocol:
    """features: "pooled" (time average, (C,)) or "flattened" (C × T); padding: "both" or "end";
    pad_length: samples per syllable (None: the longest syllable rounded up to ``multiple``)."""
    name: str
    features: str
    padding: str
    standardize: bool
    epochs: int
    tasks: tuple
    pad_length: int | None = None
    lr: float = 1e-3
    batch_size: int = 64
    multiple: int = 160
    representation: str = "mean"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        return d


PROTOCOLS = {
    "paper": Protocol("paper", features="pooled", padding="both", standardize=False, epochs=50,
                      tasks=("vowel", "syllable"), representation="sample"),
    "thesis": Protocol("thesis", features="flattened", padding="both", standardize=False, epochs=100,
                       tasks=("syllable",), pad_length=PAD_LENGTH),
    "robust": Protocol("robust", features="pooled", padding="end", standardize=True, epochs=50,
                       tasks=("vowel", "syllable")),
}


def get_protocol(name: str, epochs: int | None = None) -> Protocol:
    """The named protocol, with ``epochs`` overridden when given."""
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {tuple(PROTOCOLS)}, got {name!r}")
    p = PROTOCOLS[name]
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        p = replace(p, epochs=epochs)
    return p


def protocol_audio(protocol: Protocol, train_segments, test_segments):
    """Syllables as fixed-length audio. segments: [(waveform (l,), syllable, vowel)].

    Returns (train audio (S, L), train labels {"vowel", "syllable"} of (S,), test audio, test labels);
    L = protocol.pad_length, or the longest syllable of both splits rounded up to protocol.multiple."""
    segs = list(train_segments) + list(test_segments)
    if not train_segments or not test_segments:
        raise ValueError("train_segments and test_segments must both be non-empty")
    length = protocol.pad_length or int(math.ceil(max(s[0].shape[0] for s in segs) / protocol.multiple)
                                        * protocol.multiple)

    def fit(w):
        if protocol.padding == "both":
            return pad_both_ends(w, length)
        w = w[:length]
        return torch.nn.functional.pad(w, (0, length - w.shape[0]))

    def build(segments):
        audio = torch.stack([fit(w) for w, _, _ in segments])
        labels = {"syllable": torch.tensor([s for _, s, _ in segments]), "vowel": torch.tensor([v for _, _, v in segments])}
        return audio, labels

    return (*build(train_segments), *build(test_segments))


@torch.no_grad()
def module_features(model, audio: torch.Tensor, features: str = "pooled", representation: str = "mean",
                    seed: int = 0, batch_size: int = 64) -> list:
    """[(S, D_m)] per module m of the frozen ``model``: D = C ("pooled", mean over T) or C·T ("flattened",
    channel-major, as the thesis' 32 × T classifier input). audio: (S, L). representation: see
    probes.stage_outputs ("sample": eps from Generator(seed), one eps per syllable and frame)."""
    if features not in ("pooled", "flattened"):
        raise ValueError(f"features must be 'pooled' or 'flattened', got {features!r}")
    check_representation(representation)
    if audio.dim() != 2:
        raise ValueError(f"audio must be (S, L), got {tuple(audio.shape)}")
    pick = (lambda o: o.z) if representation == "sample" else (lambda o: o.representation)   # (B, T, C)
    if features == "pooled":
        take = lambda o: pick(o).mean(1)  # noqa: E731
    else:
        take = lambda o: pick(o).transpose(1, 2).reshape(o.z.shape[0], -1)  # noqa: E731
    return encode_batches(model, audio, batch_size, representation, torch.Generator().manual_seed(seed), take=take)


class FeatureDraws:
    """draw(epoch) -> module_features of one reparameterised draw: a fresh eps per epoch (the SIM authors' probes
    encode every batch anew), or, with ``sample_draws`` = K < epochs, draw epoch % K (K encodings of the
    syllables instead of one per epoch: cheaper, cached). With ``representation="mean"`` or a model without a
    probabilistic stage every epoch gets the same features (computed once). Draw d uses Generator(seed + 7919·d)."""

    def __init__(self, model, audio, features: str, representation: str, seed: int, epochs: int,
                 sample_draws: int | None = None):
        stochastic = representation == "sample" and any(stochastic_stages(model))
        self.k = 1 if not stochastic else max(1, min(epochs, sample_draws or epochs))
        self.cache_all = self.k < epochs
        self._args = (model, audio, features, representation, seed)
        self._cache = {}

    def __call__(self, epoch: int) -> list:
        d = epoch % self.k
        if d in self._cache:
            return self._cache[d]
        model, audio, features, representation, seed = self._args
        x = module_features(model, audio, features, representation, seed=seed + 7919 * d)
        if self.cache_all or d == 0:   # draw 0 is read again (standardisation, train accuracy)
            self._cache[d] = x
        return x


def summarise_runs(values) -> dict:
    """{"mean", "std", "runs"}: the mean and sample standard deviation (ddof=1; 0 for one run) of accuracies."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("values must be non-empty")
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "runs": v.tolist()}


def probe_protocol(model, train_segments, test_segments, protocol: Protocol, seeds: int = 3,
                   representation: str | None = None, sample_draws: int | None = None) -> list:
    """Run ``protocol`` on every module of ``model`` ``seeds`` times.

    representation: "sample" | "mean" (None: the protocol's, ``Protocol.representation``). With "sample"
    the probes of seed s train on a fresh draw of the training syllables' features every epoch
    (``FeatureDraws``; ``sample_draws`` caps the distinct draws) and are scored on one draw of the test
    syllables'. Returns one dict per module: {"module": m, "feature_dim", task: {"mean", "std", "runs",
    "train_mean"}} for each task of the protocol (test accuracies in [0, 1])."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    representation = check_representation(protocol.representation if representation is None else representation)
    a_tr, y_tr, a_te, y_te = protocol_audio(protocol, train_segments, test_segments)
    acc = None  # acc[m][task] = ([test], [train])
    fixed = None
    for s in range(seeds):
        if fixed is not None:
            draws, x_te = fixed
        else:
            draws = FeatureDraws(model, a_tr, protocol.features, representation, 1_000_003 * s, protocol.epochs,
                                 sample_draws)
            x_te = module_features(model, a_te, protocol.features, representation, seed=1_000_003 * s + 1)
            if draws.k == 1:   # the same features for every seed: encode once
                fixed = (draws, x_te)
        x0 = draws(0)
        if acc is None:
            acc = [{t: ([], []) for t in protocol.tasks} for _ in x0]
        jobs = [(m, task) for m in range(len(x0)) for task in protocol.tasks]
        norm = [standardizer(x0[m]) if protocol.standardize else (lambda x: x) for m in range(len(x0))]
        probes = fit_linear_probes(lambda e: [norm[m](draws(e)[m]) for m, _ in jobs], [y_tr[t] for _, t in jobs],
                                   [TASKS[t] for _, t in jobs], protocol.epochs, protocol.lr, protocol.batch_size,
                                   seed=s)
        with torch.no_grad():
            for (m, task), probe in zip(jobs, probes):
                acc[m][task][0].append((probe(norm[m](x_te[m])).argmax(1) == y_te[task]).float().mean().item())
                acc[m][task][1].append((probe(norm[m](x0[m])).argmax(1) == y_tr[task]).float().mean().item())
    rows = []
    for m, per_task in enumerate(acc):
        row = {"module": m, "feature_dim": int(draws(0)[m].shape[1])}
        for task, (test, train) in per_task.items():
            row[task] = summarise_runs(test) | {"train_mean": float(np.mean(train))}
        rows.append(row)
    return rows
