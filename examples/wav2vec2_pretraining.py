"""wav2vec 2.0 pre-training with Hugging Face's model: its own loss vs its contrastive term served by sim_kernels.

A tiny randomly initialised ``transformers.Wav2Vec2ForPreTraining`` is trained twice from the same seed on the same
batches (same masks, same negatives): once with the loss the model computes itself (``outputs.loss``), once with
the contrastive term replaced by ``sim_kernels.wav2vec2_contrastive_loss`` (the diversity term is the model's, as
HF computes it). The two loss curves are the same up to float32 rounding.

    python examples/wav2vec2_pretraining.py                    # the paper's recordings if present, else synthetic
    python examples/wav2vec2_pretraining.py --synthetic --steps 20 --backend reference

Audio: the Smooth InfoMax paper's recordings (github.com/fdenoodt/Artificial-Speech-Dataset, CC BY-NC-SA 4.0) when
``--data`` (default: $PAPER_DATA, else the Makefile's default beside this repository) holds a clone of them;
otherwise synthesised three-syllable "words" (noise bursts and vowel-like sums of sines). Utterances are cropped
to random lengths and padded, so the model sees an ``attention_mask`` and the masks and negatives avoid padding.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining  # noqa: E402
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices  # noqa: E402

from sim_kernels import wav2vec2_contrastive_loss, wav2vec2_negatives  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("PAPER_DATA", ROOT.parent / "shared" / "data" / "artificial-speech-dataset"))
SAMPLE_RATE, LENGTH = 16000, 10240  # 640 ms words, as sim_models reads the recordings


def tiny_config(num_negatives: int = 10) -> Wav2Vec2Config:
    """A ~60k-parameter wav2vec 2.0: 4 conv layers (320x down-sampling: 31 frames per 640 ms), 2 transformer
    layers of width 32, 2 codebooks of 16 entries; layer norms that honour attention_mask (the "large" layout)."""
    return Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32, 32, 32), conv_kernel=(10, 8, 4, 4), conv_stride=(5, 4, 4, 4), conv_bias=True,
        feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, num_codevectors_per_group=16, num_codevector_groups=2,
        codevector_dim=16, proj_codevector_dim=16, num_negatives=num_negatives, contrastive_logits_temperature=0.1,
        diversity_loss_weight=0.1, mask_time_prob=0.4, mask_time_length=3, layerdrop=0.0)


# ---- audio --------------------------------------------------------------------------------------------------

def load_recordings(data_dir: Path, count: int, seed: int) -> list[torch.Tensor]:
    """``count`` words of ``data_dir/reshuffledv2/train`` (a seeded choice), 16 kHz, the first 10240 samples."""
    from sim_models.data.audio_io import fit_length, read_audio

    files = sorted((data_dir / "reshuffledv2" / "train").glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"no .wav files in {data_dir / 'reshuffledv2' / 'train'}")
    pick = np.random.default_rng(seed).choice(len(files), size=min(count, len(files)), replace=False)
    return [fit_length(read_audio(files[i], SAMPLE_RATE), LENGTH) for i in sorted(pick)]


def synthesise_words(count: int, seed: int) -> list[torch.Tensor]:
    """``count`` 640 ms "words": three syllables, each a 40 ms noise burst then a 160 ms vowel (three sines at
    random formant-like frequencies with a decaying envelope), at random pitch and loudness."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(0.16 * SAMPLE_RATE)) / SAMPLE_RATE
    words = []
    for _ in range(count):
        parts = []
        for _ in range(3):
            burst = 0.3 * torch.randn(int(0.04 * SAMPLE_RATE), generator=g)
            freqs = torch.tensor([300.0, 1200.0, 2500.0]) * (0.7 + 0.6 * torch.rand(3, generator=g))
            vowel = (torch.sin(2 * math.pi * freqs.view(3, 1) * t) * torch.tensor([1.0, 0.5, 0.25]).view(3, 1)).sum(0)
            parts += [burst, vowel * torch.exp(-3 * t) * (0.3 + 0.5 * torch.rand((), generator=g))]
        w = torch.cat(parts)
        words.append(torch.nn.functional.pad(w, (0, LENGTH - w.numel()))[:LENGTH])
    return words


# ---- batches ------------------------------------------------------------------------------------------------

@dataclass
class Batch:
    input_values: torch.Tensor  # (B, L) float32, zero-padded audio
    attention_mask: torch.Tensor  # (B, L) int64, 1 = real sample
    mask_time_indices: torch.Tensor  # (B, T) bool, HF's _compute_mask_indices on the real frames
    sampled_negative_indices: torch.Tensor  # (B, T, N) int64, sim_kernels.wav2vec2_negatives on the real frames


def make_batches(words, steps: int, batch_size: int, config: Wav2Vec2Config, seed: int) -> list[Batch]:
    """``steps`` batches of ``batch_size`` words, each cropped to a random 60-100 % of its length and padded; masks
    drawn by HF's ``_compute_mask_indices`` (numpy, seeded) on the feature frames of the real samples, negatives by
    ``wav2vec2_negatives`` (a seeded torch generator)."""
    rng = np.random.default_rng(seed)
    np.random.seed(seed)  # _compute_mask_indices draws from numpy's global RNG
    gen = torch.Generator().manual_seed(seed)
    probe = Wav2Vec2ForPreTraining.__new__(Wav2Vec2ForPreTraining)  # for _get_feat_extract_output_lengths only
    probe.config = config
    out = []
    for _ in range(steps):
        pick = rng.choice(len(words), size=batch_size, replace=len(words) < batch_size)
        lengths = torch.tensor([int(LENGTH * rng.uniform(0.6, 1.0)) for _ in pick])
        audio = torch.zeros(batch_size, LENGTH)
        for i, (w, n) in enumerate(zip(pick, lengths.tolist())):
            audio[i, :n] = words[w][:n]
        attention = (torch.arange(LENGTH) < lengths.view(-1, 1)).long()
        frames = probe._get_feat_extract_output_lengths(lengths).long()
        T = int(probe._get_feat_extract_output_lengths(torch.tensor(LENGTH)))
        sub_attention = (torch.arange(T) < frames.view(-1, 1)).long()
        mask = torch.from_numpy(_compute_mask_indices((batch_size, T), config.mask_time_prob, config.mask_time_length,
                                                      attention_mask=sub_attention, min_masks=2))
        neg = wav2vec2_negatives(mask, config.num_negatives, generator=gen, lengths=frames)
        out.append(Batch(audio, attention, mask, neg))
    return out


# ---- training -----------------------------------------------------------------------------------------------

def train(batches: list[Batch], config: Wav2Vec2Config, *, ours: bool, seed: int = 0, lr: float = 1e-3,
          backend: str = "auto") -> list[tuple[float, float]]:
    """(loss, contrastive loss) per step of one run from ``seed``: HF's ``outputs.loss`` (ours=False) or our
    contrastive term plus the model's diversity term, both as ``Wav2Vec2ForPreTraining.forward`` weighs them."""
    torch.manual_seed(seed)
    model = Wav2Vec2ForPreTraining(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    num_codevectors = config.num_codevectors_per_group * config.num_codevector_groups
    curve = []
    for b in batches:
        opt.zero_grad(set_to_none=True)
        if not ours:
            out = model(b.input_values, attention_mask=b.attention_mask, mask_time_indices=b.mask_time_indices,
                        sampled_negative_indices=b.sampled_negative_indices)
            loss, contrastive = out.loss, out.contrastive_loss
        else:  # the same forward without negatives: the model's features, no loss of its own
            out = model(b.input_values, attention_mask=b.attention_mask, mask_time_indices=b.mask_time_indices)
            contrastive = wav2vec2_contrastive_loss(out.projected_states, out.projected_quantized_states,
                                                    b.sampled_negative_indices, b.mask_time_indices,
                                                    config.contrastive_logits_temperature, backend=backend)
            diversity = (num_codevectors - out.codevector_perplexity) / num_codevectors * b.mask_time_indices.sum()
            loss = contrastive + config.diversity_loss_weight * diversity
        loss.backward()
        opt.step()
        curve.append((float(loss.detach()), float(contrastive.detach())))
    return curve


def run(steps: int = 20, batch_size: int = 4, seed: int = 0, data: Path | None = DEFAULT_DATA,
        backend: str = "auto", num_negatives: int = 10):
    """Both runs on the same batches; returns (hf_curve, our_curve, source) with curves of (loss, contrastive)."""
    if data is not None and (Path(data) / "reshuffledv2").is_dir():
        words, source = load_recordings(Path(data), 64, seed), f"recordings in {data}"
    else:
        words, source = synthesise_words(64, seed), "synthesised words"
    config = tiny_config(num_negatives)
    batches = make_batches(words, steps, batch_size, config, seed)
    return train(batches, config, ours=False, seed=seed), train(batches, config, ours=True, seed=seed,
                                                                backend=backend), source


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a clone of the paper's recordings")
    p.add_argument("--synthetic", action="store_true", help="synthesised words even when recordings are present")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--negatives", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="auto", help="sim_kernels backend: auto, native, triton, reference")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (1: a model this small gains nothing from more, and a busy machine loses much)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    start = time.perf_counter()
    hf, ours, source = run(a.steps, a.batch_size, a.seed, None if a.synthetic else a.data, a.backend, a.negatives)
    print(f"wav2vec 2.0 (tiny, random init), {source}, batch {a.batch_size}, {a.negatives} negatives, "
          f"backend {a.backend}")
    print(f"{'step':>4}  {'HF loss':>12}  {'ours':>12}  {'|diff|':>9}  {'HF contrastive':>14}  {'ours':>12}")
    for i, ((hl, hc), (ol, oc)) in enumerate(zip(hf, ours), 1):
        print(f"{i:>4}  {hl:>12.6f}  {ol:>12.6f}  {abs(hl - ol):>9.2e}  {hc:>14.6f}  {oc:>12.6f}")
    worst = max(abs(h - o) / max(abs(h), 1e-12) for (h, _), (o, _) in zip(hf, ours))
    print(f"largest relative difference of the loss over {len(hf)} steps: {worst:.2e} "
          f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
