"""Named configs, registered by name: ``@register_preset("name")`` on a function that returns a fresh ``Config``.

Adding a preset is one function here (or in any module imported by sim_models/config/__init__.py) plus its
decorator; ``PRESETS`` is the registry ``get_config`` and the command line's ``--config`` choices read.
Each preset's docstring gives its source; measured outcomes are in docs/results.md and docs/reproduce.md.

Shared conventions: ``kl_reduction="time"`` where β was tuned with the authors' code, whose KL is summed
over time and averaged over batch and channels (fdenoodt/Smooth-InfoMax, ``models/independent_module.py``);
with the paper's formula ("dims") the same β weighs the KL C/T times more.
"""
from __future__ import annotations

from typing import Callable

from sim_models.config.encoder_spec import encoder_from_flat
from sim_models.config.schema import Config, ModelConfig, TrainConfig, paper_encoder, thesis_encoder

__all__ = ["PRESETS", "register_preset", "SMALL_CHANNELS", "SMALL_BETA"]

PRESETS: dict[str, Callable[[], Config]] = {}


def register_preset(name: str):
    """Decorator: register ``fn() -> Config`` as the named config ``name`` (ValueError when taken)."""
    def register(fn):
        if name in PRESETS:
            raise ValueError(f"config preset {name!r} is registered twice")
        PRESETS[name] = fn
        return fn
    return register


@register_preset("sim-paper")
def sim_paper() -> Config:
    """Smooth InfoMax paper, Table 1, exactly: conv kernels (10, 8, 4, 4, 4), strides (5, 4, 2, 2, 2), paddings
    (2, 2, 2, 2, 1), 512 channels, cut into three probabilistic stages [conv1, conv2] | [conv3, conv4] | [conv5],
    each with parallel 1×1 mu / sigma heads, plus a GRU stage of 256: 10240 samples -> 2047 -> 511 | 256 -> 129 |
    64 frames (Table 1's output column). K = 10, N = 10, β = 0.01, Adam lr 2e-4, batch 8, 1000 epochs (§4.1.3).
    The same kernels, strides and paddings are GIM's audio encoder (Löwe et al.'s ``load_audio_model.py``).
    As in the authors' code: kl_reduction="time", context and targets two independent samples of N(mu, sigma^2),
    positives from a random 128-frame window (``subsample_window=128``; GIM's ``subsample``). The logvar heads
    keep PyTorch's default init (every unit starts at the prior, KL ~ 0)."""
    m = ModelConfig(encoder=paper_encoder(), ar_hidden=256, prediction_steps=10, negative_samples=10, beta=0.01,
                    kl_reduction="time", independent_context_sample=True, subsample_window=128)
    return Config("sim-paper", m, TrainConfig(lr=2e-4, batch_size=8, epochs=1000))


@register_preset("vgim-thesis")
def vgim_thesis() -> Config:
    """The V-GIM thesis, §4.1 and Tables 4.1 / 4.2: stage 1 = Conv(10, 4, 2), MaxPool(8, 4), Conv(8, 3, 2),
    MaxPool(8, 4), heads Conv(3, 1, 2); stage 2 = Conv(6, 2, 2), Conv(6, 2, 2), heads Conv(3, 1, 1); 32 channels;
    ReLU after every conv but the heads; no GRU; K = 12, β = 0.0035 ("the largest value ... without posterior
    collapse", searched with kl_reduction "time" in the thesis' code); Adam lr 0.01 x 0.995 per epoch; batch 171;
    800 epochs. Frames for 10240 samples: 54 | 13. (The thesis' text says 52 after stage 1: its code,
    fdenoodt/Smooth-InfoMax at 70e07b8, used head padding 1; we follow Table 4.1.) Batch 171 over 681 training
    words gives 3 full batches per epoch; the trainer drops the last partial one (a known deviation)."""
    m = ModelConfig(encoder=thesis_encoder(), ar_hidden=0, prediction_steps=12, negative_samples=10, beta=0.0035,
                    kl_reduction="time")
    return Config("vgim-thesis", m, TrainConfig(lr=0.01, lr_decay=0.995, batch_size=171, epochs=800))


@register_preset("vgim-thesis-gim")
def vgim_thesis_gim() -> Config:
    """The thesis' GIM baseline (§4.1): ``vgim-thesis`` with β = 0, keeping the reparameterisation layers."""
    c = vgim_thesis()
    c.name, c.model.beta = "vgim-thesis-gim", 0.0
    return c


@register_preset("gim")
def gim() -> Config:
    """``sim-paper`` with β = 0 and deterministic stages (Greedy InfoMax; paper §4.1.4) whose output is a linear
    1×1 conv after the last ReLU (``deterministic_head="linear"``): the SIM authors' GIM baseline, whose
    ``CNNEncoder.forward`` always applies its mu head (fdenoodt/Smooth-InfoMax, ``models/cnn_encoder.py``)."""
    c = sim_paper()
    c.name, c.model.beta, c.model.probabilistic, c.model.deterministic_head = "gim", 0.0, False, "linear"
    return c


@register_preset("gim-loewe")
def gim_loewe() -> Config:
    """``gim`` with the ReLU output (``deterministic_head="relu"``): Löwe et al.'s GIM."""
    c = gim()
    c.name, c.model.deterministic_head = "gim-loewe", "relu"
    return c


@register_preset("cpc")
def cpc() -> Config:
    """``gim``'s layers (linear 1×1 heads at the stage boundaries, the authors' ``cpc_audio_de_boer_extra_layers``)
    trained end to end by the GRU's loss only (no gradient isolation; paper §4.1.4). The stages are taps at the
    layers equivalent to the SIM stages (after conv2, conv4, conv5 and the GRU), as the paper compares them
    ("we use the equivalent layer", §4.3); only the last stage has a loss."""
    c = gim()
    c.name, c.model.end_to_end = "cpc", True
    return c


@register_preset("supervised")
def supervised() -> Config:
    """Paper Table 2's supervised row: ``cpc``'s encoder trained end to end from random init with a linear
    classifier on the time-averaged GRU output, cross-entropy on the 9 syllable labels (``model.supervised_labels
    =vowel``: the 3 vowels), syllables cut at their boundaries and zero-padded at both ends (paper §4.2) to 8800
    samples (thesis Appendix A); Adam lr 1e-3, 50 epochs, batch 64: the authors' syllable classifier settings
    (fdenoodt/Smooth-InfoMax, config_code/sim_setup.py: CLASSIFIER_CONFIG_SYLLABLES; their
    linear_classifiers/logistic_regression.py, ModelType.FULLY_SUPERVISED). See sim_models/model/supervised.py."""
    c = cpc()
    c.name, c.model.objective, c.model.supervised_labels = "supervised", "supervised", "syllable"
    c.train.lr, c.train.epochs, c.train.batch_size = 1e-3, 50, 64
    return c


@register_preset("tiny")
def tiny() -> Config:
    """Ours, for the demo (minutes on 2 CPU cores): the paper's kernels and strides at 48 channels with paddings
    (3, 2, 1, 1, 1) (10240 -> 2048 -> 512 | 256 -> 128 -> 64 frames), two probabilistic stages [conv1, conv2] |
    [conv3, conv4, conv5] and a GRU of 48; Adam lr 2e-3, batch 8; β = 0.001 (kl_reduction "dims") and logvar
    heads whose bias starts at -4 (sigma ~ 0.14), which make it learn within that budget (docs/results.md)."""
    encoder = encoder_from_flat(kernel_sizes=[10, 8, 4, 4, 4], strides=[5, 4, 2, 2, 2], paddings=[3, 2, 1, 1, 1],
                                channels=[48] * 5, modules=[[0, 1], [2, 3, 4]], maxpool=[0, 0])
    m = ModelConfig(encoder=encoder, ar_hidden=48, beta=0.001, logvar_bias_init=-4.0)
    return Config("tiny", m, TrainConfig(lr=2e-3, batch_size=8, epochs=8, checkpoint_every=100, log_every=5))


SMALL_CHANNELS = 48
# The paper's β = 0.01 ("time": summed over T frames, averaged over C channels) costs β * T / C per nat and
# frame: 0.01 * 511 / 512 in stage 1 at 512 channels. The same price at 48 channels is β = 0.01 * 48 / 512.
SMALL_BETA = 0.01 * SMALL_CHANNELS / 512


@register_preset("sim-small")
def sim_small() -> Config:
    """``sim-paper`` at 48 channels (GRU of 48), cut the same way, so "stage m" is the paper's g_enc^m.
    β = 0.01 * 48 / 512 (~0.00094, "time"): the paper's price per nat, not its number (0.01 at 48 channels
    costs ten times more per nat; docs/reproduce.md). Adam lr 2e-4, batch 8 (paper §4.1.3; the authors'
    configs use batch 64, a documented variant: ``train.batch_size=64``); epochs are the budget's."""
    m = ModelConfig(encoder=paper_encoder(SMALL_CHANNELS), ar_hidden=SMALL_CHANNELS, prediction_steps=10,
                    negative_samples=10, beta=SMALL_BETA, kl_reduction="time", independent_context_sample=True,
                    subsample_window=128)
    return Config("sim-small", m, TrainConfig(lr=2e-4, batch_size=8, epochs=100, checkpoint_every=200, log_every=10))
