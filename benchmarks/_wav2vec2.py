"""The wav2vec 2.0 contrastive loss benchmarks' shapes, inputs and timed providers.

Shapes (``W2V_SHAPES``; T = frames of 20 ms, C = the projected dimension, N = distractors):
    w2v2-base   B 8, T 780, C 256, N 100, 50 % of the frames masked: wav2vec 2.0 base pretraining per device
                (about 8 utterances of 15.6 s; ``project_q`` / ``project_hid`` to 256; 100 distractors;
                Baevski et al. 2020, section 4.2, and Hugging Face's Wav2Vec2Config defaults)
    w2v2-small  B 4, T 200, C 64, N 20, 50 % masked: a quick one

Providers (every one computes the same loss, checked against ``hf-eager`` before timing):
    hf-eager     Hugging Face's own lines: ``Wav2Vec2ForPreTraining.compute_contrastive_logits`` of the installed
                 ``transformers`` (called as it is), the ``neg_is_pos`` mask and the summed cross-entropy as
                 ``Wav2Vec2ForPreTraining.forward`` writes them (transformers ``models/wav2vec2/modeling_wav2vec2.py``)
    hf-compiled  the same function under ``torch.compile(dynamic=False)``
    native       ``sim_kernels.wav2vec2_contrastive_loss(..., backend="native")``: the fused C++ / CUDA kernel
    triton       the same with ``backend="triton"`` (CUDA tensors only)
Modes: ``fwd`` (no_grad) and ``fwd+bwd`` (backward into fresh .grad buffers of both feature tensors).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ._providers import unavailable_reason as fused_unavailable_reason

__all__ = ["W2V_SHAPES", "W2V_PROVIDERS", "MODES", "Wav2Vec2Shape", "Wav2Vec2Inputs", "build", "make_step",
           "unavailable_reason", "hf_contrastive_loss"]

MODES = ("fwd", "fwd+bwd")
W2V_PROVIDERS = ("hf-eager", "hf-compiled", "native", "triton")
TEMPERATURE = 0.1  # Wav2Vec2Config.contrastive_logits_temperature


@dataclass(frozen=True)
class Wav2Vec2Shape:
    id: str
    B: int
    T: int
    C: int
    N: int
    mask_prob: float = 0.5

    def as_dict(self):
        return {"B": self.B, "T": self.T, "C": self.C, "N": self.N, "mask_prob": self.mask_prob}


W2V_SHAPES = {s.id: s for s in (Wav2Vec2Shape("w2v2-base", 8, 780, 256, 100), Wav2Vec2Shape("w2v2-small", 4, 200, 64, 20))}


@dataclass
class Wav2Vec2Inputs:
    transformer_features: torch.Tensor   # (B, T, C), requires grad in fwd+bwd
    quantized_features: torch.Tensor     # (B, T, C), requires grad in fwd+bwd
    sampled_negative_indices: torch.Tensor  # (B, T, N) int64 global rows b*T + t
    mask_time_indices: torch.Tensor      # (B, T) bool

    def leaves(self):
        return [self.transformer_features, self.quantized_features]

    def clear_grads(self):
        for t in self.leaves():
            t.grad = None


def build(shape: Wav2Vec2Shape, *, requires_grad: bool, device: str = "cpu", seed: int = 0) -> Wav2Vec2Inputs:
    """Random features, a mask of ``mask_prob`` of the frames, and negatives drawn as Hugging Face's
    ``_sample_negative_indices`` draws them (masked frames of the same utterance, never the anchor itself), with
    sim_kernels.sampling.wav2vec2_negatives. One row in 50 of the quantised features is a copy of another
    row of its utterance, so ``neg_is_pos`` has work to do as codebook collisions give it."""
    from sim_kernels.sampling import wav2vec2_negatives

    g = torch.Generator().manual_seed(seed)
    B, T, C, N = shape.B, shape.T, shape.C, shape.N
    c = torch.randn(B, T, C, generator=g)
    q = torch.randn(B, T, C, generator=g)
    copies = torch.rand(B, T, generator=g) < 0.02
    src = torch.randint(0, T, (B, T), generator=g)
    q = torch.where(copies.unsqueeze(-1), q.gather(1, src.unsqueeze(-1).expand(B, T, C)), q)
    mask = torch.rand(B, T, generator=g) < shape.mask_prob
    mask[:, :2] = True  # at least two masked frames per utterance: a negative other than the anchor exists
    neg = wav2vec2_negatives(mask, N, generator=g)
    return Wav2Vec2Inputs(c.to(device).requires_grad_(requires_grad), q.to(device).requires_grad_(requires_grad),
                          neg.to(device), mask.to(device))


def hf_contrastive_loss(transformer_features, quantized_features, sampled_negative_indices, mask_time_indices,
                        temperature=TEMPERATURE):
    """Hugging Face's contrastive loss: its lines of ``Wav2Vec2ForPreTraining.forward`` (transformers 4.57.6, steps
    3-6) in effect verbatim, with its own static ``compute_contrastive_logits``. Also the oracle of
    tests/sim_kernels/test_wav2vec2.py."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2ForPreTraining

    mask_time_indices = mask_time_indices.to(torch.bool)  # forward's first line
    batch_size, sequence_length, hidden_size = quantized_features.shape
    # 3. negatives: quantized_features.view(-1, hidden_size)[sampled_negative_indices.long().view(-1)]
    negative_quantized_features = quantized_features.view(-1, hidden_size)[sampled_negative_indices.long().view(-1)]
    negative_quantized_features = negative_quantized_features.view(
        batch_size, sequence_length, -1, hidden_size).permute(2, 0, 1, 3)
    # 4. logits: HF's own static method
    logits = Wav2Vec2ForPreTraining.compute_contrastive_logits(
        quantized_features[None, :], negative_quantized_features, transformer_features, temperature)
    # 5. neg_is_pos -> -inf
    neg_is_pos = (quantized_features == negative_quantized_features).all(-1)
    if neg_is_pos.any():
        logits[1:][neg_is_pos] = float("-inf")
    # 6. cross-entropy with target 0 on masked frames, -100 elsewhere, summed
    logits = logits.transpose(0, 2).reshape(-1, logits.size(0))
    target = ((1 - mask_time_indices.long()) * -100).transpose(0, 1).flatten()
    return torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum")


def unavailable_reason(provider: str, device: str = "cpu") -> str | None:
    """None when ``provider`` runs on ``device`` here, else the reason for pytest.skip."""
    if provider not in W2V_PROVIDERS:
        raise ValueError(f"provider must be one of {W2V_PROVIDERS}, got {provider!r}")
    if device == "cuda" and not torch.cuda.is_available():
        return "--sim-device=cuda but torch.cuda.is_available() is False"
    if provider.startswith("hf"):
        try:
            import transformers  # noqa: F401
        except ImportError as e:
            return f"{provider} needs the transformers package (a test dependency: pip install -r requirements.txt): {e}"
    if provider in ("native", "triton"):  # the SIM loss benchmarks' rule for the fused backends
        return fused_unavailable_reason(provider, device)
    return None


def _loss_fn(provider: str) -> Callable:
    if provider == "hf-eager":
        return hf_contrastive_loss
    if provider == "hf-compiled":
        torch._dynamo.reset()  # a fresh cache per (shape, mode), as the SIM loss benchmarks do
        return torch.compile(hf_contrastive_loss, dynamic=False)
    from sim_kernels import wav2vec2_contrastive_loss

    return lambda *a: wav2vec2_contrastive_loss(*a, TEMPERATURE, backend=provider)


def make_step(provider: str, mode: str, x: Wav2Vec2Inputs) -> Callable[[], torch.Tensor]:
    """A no-argument callable running one ``mode`` step of ``provider`` on ``x``; returns the loss (detached)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    fn = _loss_fn(provider)
    args = (x.transformer_features, x.quantized_features, x.sampled_negative_indices, x.mask_time_indices)
    if mode == "fwd":
        def step():
            with torch.no_grad():
                return fn(*args)
        return step

    def step():
        loss = fn(*args)
        loss.backward()
        return loss.detach()
    return step
