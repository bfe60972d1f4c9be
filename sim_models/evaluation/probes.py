"""Linear probes on frozen, average-pooled module outputs (the paper's evaluation).

Every syllable of the synthesised data is cut at its recorded boundaries and zero-padded at the
end to one common length (the longest syllable, rounded up to the encoder's downsampling). Each
module's representation (mu for probabilistic modules, the output otherwise; model in eval mode)
is average-pooled over time, and a linear classifier is trained on it as in the paper: Adam,
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

__all__ = ["segments_tensor", "pooled_features", "train_probe"]


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


@torch.no_grad()
def pooled_features(model, audio: torch.Tensor, batch_size: int = 64) -> list:
    """[(S, C_m)] for every module m: time-averaged representation of the frozen model."""
    was_training = model.training
    model.eval()
    feats = None
    for i in range(0, audio.shape[0], batch_size):
        outs = model.encode(audio[i:i + batch_size])
        pooled = [o.representation.mean(dim=1) for o in outs]
        feats = [[p] for p in pooled] if feats is None else [f + [p] for f, p in zip(feats, pooled)]
    model.train(was_training)
    return [torch.cat(f) for f in feats]


def train_probe(x_train, y_train, x_test, y_test, num_classes: int, epochs: int = 50, lr: float = 1e-3,
                batch_size: int = 64, seed: int = 0, standardize: bool = True) -> dict:
    """A linear classifier (with bias) on fixed features (S, C). Returns train/test accuracy in [0, 1]."""
    if standardize:
        mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-12)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = nn.Linear(x_train.shape[1], num_classes)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    n = x_train.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss = nn.functional.cross_entropy(probe(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc_train = (probe(x_train).argmax(1) == y_train).float().mean().item()
        acc_test = (probe(x_test).argmax(1) == y_test).float().mean().item()
    return {"train_accuracy": acc_train, "test_accuracy": acc_test}

