"""Linear probes on frozen, average-pooled module outputs (the paper's evaluation).

Every syllable of the synthesised data is cut at its recorded boundaries and zero-padded at the
end to one common length (the longest syllable, rounded up to the encoder's downsampling). Each
module's representation (``stage_outputs``: "mean" = mu for probabilistic modules, the output
otherwise; "sample" = z = mu + sigma * eps drawn through every module, the SIM authors'
measurement; model in eval mode) is average-pooled over time, and a linear classifier is trained on it as in the paper: Adam,
lr 1e-3, 50 epochs, cross-entropy; vowel (3 classes) and syllable (9 classes). Train-split
syllables train the probe, test-split syllables score it.

One addition to the paper's recipe: features are standardised with the training syllables' mean
and standard deviation (per dimension) before the probe (``standardize=True``). That is an affine
map, so the probe is still linear in the raw features; it only spares Adam at lr 1e-3 from the
tiny scales of some representations (mu of a barely trained SIM module has a spread ~1e-4, on
which 50 epochs of Adam never leave the majority class).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from sim_models.model.encode import encode_batches

__all__ = ["segments_tensor", "pooled_features", "fit_linear_probes", "train_probe", "standardizer"]


def segments_tensor(segments, multiple: int = 160, length: int | None = None):
    """segments: list of (waveform (l,), syllable, vowel). Returns audio (S, L), syllable (S,), vowel (S,)."""
    if not segments:
        raise ValueError("no syllable segments to probe")
    if length is None:
        length = int(math.ceil(max(s[0].shape[0] for s in segments) / multiple) * multiple)
    audio = torch.zeros(len(segments), length)
    for i, (w, _, _) in enumerate(segments):
        n = min(w.shape[0], length)
        audio[i, :n] = w[:n]
    syl = torch.tensor([s[1] for s in segments], dtype=torch.int64)
    vow = torch.tensor([s[2] for s in segments], dtype=torch.int64)
    return audio, syl, vow


def pooled_features(model, audio: torch.Tensor, batch_size: int = 64, representation: str = "mean",
                    generator=None) -> list:
    """[(S, C_m)] for every stage m: the time average of the frozen model's ``representation``
    (sim_models/model/encode.py; "sample" draws eps from ``generator``, a fresh eps for every syllable)."""
    pick = (lambda o: o.z) if representation == "sample" else (lambda o: o.representation)
    return encode_batches(model, audio, batch_size, representation, generator, take=lambda o: pick(o).mean(dim=1))


def fit_linear_probes(draw, ys, num_classes, epochs: int = 50, lr: float = 1e-3, batch_size: int = 64,
                      seed: int = 0, bias: bool = True) -> list:
    """Train P linear classifiers side by side; returns the P ``nn.Linear`` (trained, in place).

    draw(epoch) -> list of P feature tensors (S, C_p) float32: the inputs of epoch ``epoch`` (the same tensors
    every epoch for fixed features; a fresh reparameterised sample per epoch for ``representation="sample"``,
    as the SIM authors' probes, which encode every batch anew). ys: P label tensors (S,) int64; num_classes:
    P ints. Cross-entropy, Adam(lr), mini-batches of ``batch_size`` in a random order. Probe p is initialised
    under torch.manual_seed(seed) and shuffled by its own Generator(seed): each probe ends exactly as if it
    had been trained alone (``train_probe`` / ``train_linear_probe`` are this with P = 1)."""
    probes, opts, gens = [], [], []
    first = None
    for p, k in enumerate(num_classes):
        if first is None:
            first = draw(0)
        x = first[p]
        if x.dim() != 2 or ys[p].shape != (x.shape[0],):
            raise ValueError(f"features must be (S, C) and labels (S,), got {tuple(x.shape)} and {tuple(ys[p].shape)}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            probes.append(nn.Linear(x.shape[1], k, bias=bias))
        opts.append(torch.optim.Adam(probes[-1].parameters(), lr=lr))
        gens.append(torch.Generator().manual_seed(seed))
    for e in range(epochs):
        xs = first if e == 0 else draw(e)
        for probe, opt, g, x, y in zip(probes, opts, gens, xs, ys):
            perm = torch.randperm(x.shape[0], generator=g)
            for i in range(0, x.shape[0], batch_size):
                idx = perm[i:i + batch_size]
                loss = nn.functional.cross_entropy(probe(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return probes


def standardizer(x_train):
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-12)
    return lambda x: (x - mean) / std


def train_probe(x_train, y_train, x_test, y_test, num_classes: int, epochs: int = 50, lr: float = 1e-3,
                batch_size: int = 64, seed: int = 0, standardize: bool = True) -> dict:
    """A linear classifier (with bias) on features (S, C). Returns train/test accuracy in [0, 1].

    x_train: a tensor (fixed features) or a callable epoch -> (S, C) (fresh samples per epoch); the train
    accuracy is measured on epoch 0's features. ``standardize`` z-scores with epoch 0's statistics."""
    x0 = x_train(0) if callable(x_train) else x_train
    f = standardizer(x0) if standardize else (lambda x: x)
    fx0 = f(x0)
    draw = (lambda e: [fx0 if e == 0 else f(x_train(e))]) if callable(x_train) else (lambda e: [fx0])
    probe = fit_linear_probes(draw, [y_train], [num_classes], epochs, lr, batch_size, seed)[0]
    with torch.no_grad():
        acc_train = (probe(fx0).argmax(1) == y_train).float().mean().item()
        acc_test = (probe(f(x_test)).argmax(1) == y_test).float().mean().item()
    return {"train_accuracy": acc_train, "test_accuracy": acc_test}
