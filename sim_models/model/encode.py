"""The one encode loop: run a frozen GreedyModel over audio in batches, in eval mode, without a gradient.

``representation`` (every probe and analysis takes it):

* ``"mean"``: mu of probabilistic stages (the output of the others), each stage reading the previous one's mu:
  a deterministic function of the audio.
* ``"sample"``: z = mu + sigma * eps for probabilistic stages, eps drawn from ``generator``, each stage reading
  the previous stage's *sample* (``GreedyModel.encode(sample=True)``): what the SIM authors' evaluation saw
  (their ``get_latents`` samples whatever the mode). Deterministic stages ignore eps.

The model's train/eval mode is restored afterwards, also on an error.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["REPRESENTATIONS", "check_representation", "stochastic_stages", "eval_mode", "encode_batches",
           "stage_outputs"]

REPRESENTATIONS = ("sample", "mean")


def check_representation(representation: str) -> str:
    """``representation`` itself; ValueError naming the choices when it is not one of ``REPRESENTATIONS``."""
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
    return representation


def stochastic_stages(model) -> list:
    """[bool] per stage: True when the stage's output depends on eps under ``representation="sample"``, i.e. the
    stage or one before it is probabilistic (a GRU after SIM stages reads their samples). For the other stages
    "sample" and "mean" give the same tensor, so an analysis computes them once."""
    out, seen = [], False
    for st in model.stages:
        seen = seen or bool(getattr(st, "probabilistic", False))
        out.append(seen)
    return out


@contextlib.contextmanager
def eval_mode(model):
    """The model in eval mode inside the block, in its previous mode after it."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _representation(representation: str):
    return (lambda o: o.z) if representation == "sample" else (lambda o: o.representation)


@torch.no_grad()
def encode_batches(model, audio: torch.Tensor, batch_size: int | None = None, representation: str = "mean",
                   generator=None, upto: int | None = None, take=None) -> list:
    """audio (N, L) -> one entry per stage 0..upto (all by default): ``take`` of each batch's StageOutputs,
    concatenated over the batches along dim 0.

    batch_size: None = one batch. take: StageOutput -> tensor, tuple of tensors, or None (nothing kept for that
    stage); default: the stage's ``representation`` (B, T_m, C_m). A tuple gives a tuple of concatenations.
    Eps for "sample" is drawn from ``generator`` batch after batch (one stream for the whole audio)."""
    check_representation(representation)
    take = take or _representation(representation)
    n = audio.shape[0]
    step = n if batch_size is None else batch_size
    parts = None
    with eval_mode(model):
        for i in range(0, max(n, 1), max(step, 1)):
            outs = model.encode(audio[i:i + step], generator=generator, upto=upto, sample=representation == "sample")
            vals = [take(o) for o in outs]
            parts = [[v] for v in vals] if parts is None else [p + [v] for p, v in zip(parts, vals)]
    return [_cat(p) for p in parts]


def _cat(chunks: list):
    if chunks[0] is None:
        return None
    if isinstance(chunks[0], tuple):
        return tuple(torch.cat(c) for c in zip(*chunks))
    return torch.cat(chunks)


def stage_outputs(model, audio: torch.Tensor, representation: str = "mean", generator=None, upto=None) -> list:
    """audio (B, L) -> [(B, T_m, C_m) float32] for stages 0..upto of the frozen model, in eval mode, as one batch."""
    return encode_batches(model, audio, None, representation, generator, upto)
