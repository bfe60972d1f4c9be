"""Run configuration: dataclasses, the named configs, YAML/JSON round trips and command-line overrides.

A ``Config`` has three parts::

    model  - the encoder (modules = lists of conv / max-pool layers + mu/logvar heads), the GRU module, the loss
    train  - optimiser, schedule, batch, epochs, training mode, checkpoint and log cadence
    data   - audio length and sample rate

``model.encoder`` is a list of modules, each a list of layers plus its heads (sim_models/encoder_spec.py)::

    model:
      encoder:
      - layers:
        - {type: conv, kernel: 10, stride: 5, padding: 2, channels: 512}
        - {type: conv, kernel: 8, stride: 4, padding: 2, channels: 512}
        head_kernel: 1
        head_padding: 0
      - ...

The flat keys of earlier runs (``kernel_sizes``, ``strides``, ``paddings``, ``channels``, ``modules``,
``maxpool``) still load (an old RUN_DIR/config.yaml builds the same model), still work as overrides
(``model.channels=[8,8,8,8,8]`` sets the width of every conv layer, on any encoder; ``model.modules`` and
``model.maxpool`` re-cut an encoder the flat format can express) and are readable as properties.

Named configs (``get_config(name)``), with their sources:

* ``sim-paper``   Smooth InfoMax paper, Table 1, exactly: conv layers with kernels (10, 8, 4, 4, 4), strides
  (5, 4, 2, 2, 2), paddings (2, 2, 2, 2, 1), 512 channels, cut as in Table 1 into three probabilistic
  modules [conv1, conv2] | [conv3, conv4] | [conv5], each with parallel 1×1 mu / sigma heads, plus a GRU
  module of 256: 10240 samples -> 2047 -> 511 | 256 -> 129 | 64 frames (Table 1's output column).
  K = 10, N = 10, beta = 0.01, Adam lr 2e-4, batch 8, 1000 epochs (§4.1.3). The same kernels, strides and
  paddings are GIM's audio encoder (Löwe et al.'s code, ``load_audio_model.py``). kl_reduction="time":
  beta = 0.01 was tuned in the authors' code, whose KL is summed over time and averaged over batch and
  channels (fdenoodt/Smooth-InfoMax, ``models/independent_module.py``); with the paper's formula ("dims")
  the same beta weighs the KL C/T times more (x4, x8 in modules 2, 3). Context and targets are two
  independent samples of N(mu, sigma^2) and the positives come from a random 128-frame window
  (``subsample_window=128``), as in the authors' code (``models/independent_module.py``, GIM's ``subsample``).
  The logvar heads keep PyTorch's default init: every unit starts at the prior (KL ~ 0).
* ``sim-small``   ``sim-paper`` at 48 channels (GRU of 48), cut the same way, so "module m" is the paper's
  g_enc^m: [conv1, conv2] | [conv3, conv4] | [conv5] + GRU; 10240 -> 2047, 511 | 256, 129 | 64 frames.
  beta = 0.01 * 48 / 512 (~0.00094, "time"): the paper's *price per nat*, not its number. In the authors'
  units a nat of KL per frame and channel costs beta * T / C; 0.01 at 512 channels costs 0.01 per nat in
  module 1 (0.0025, 0.00125 in modules 2, 3); 0.01 at 48 channels would cost 0.107 per nat, ten times more
  (it collapses every unit: docs/reproduce.md). Adam lr 2e-4, batch 8 (paper §4.1.3; the authors' configs
  use batch 64, a documented variant: ``train.batch_size=64``); epochs are the budget's.
* ``vgim-thesis`` the V-GIM thesis, §4.1 and Tables 4.1 / 4.2, exactly: module 1 = Conv(10, 4, 2),
  MaxPool(8, 4), Conv(8, 3, 2), MaxPool(8, 4), heads Conv(3, 1, 2); module 2 = Conv(6, 2, 2), Conv(6, 2, 2),
  heads Conv(3, 1, 1); 32 channels; ReLU after every conv but the heads; no GRU; K = 12, beta = 0.0035;
  Adam lr 0.01 x 0.995 per epoch; batch 171; 800 epochs. Frames for 10240 samples: 2559 -> 638 -> 212 -> 52
  -> heads 54 | 27 -> 13 -> 13. The thesis' text says 32 x 52 after module 1: Table 4.1's head padding 2
  gives 54 by the conv arithmetic; the thesis' code (fdenoodt/Smooth-InfoMax at commit 70e07b8,
  options_classify_syllables.py: module 1 paddings [2, 2, 1]) used head padding 1, which gives the text's 52.
  We follow the table (``model.encoder`` can set padding 1). Module 2 gives 13 either way.
  kl_reduction="time": the thesis' equation is the per-frame channel sum and does not say how it is
  averaged; its code (same commit, models/independent_module.py) sums the KL over time and averages over
  batch and channels, and beta = 0.0035 was searched with that code ("the largest value ... without
  posterior collapse", §4.1).
* ``vgim-thesis-gim`` the thesis' GIM baseline (§4.1): ``vgim-thesis`` with beta = 0, keeping the
  reparameterisation layers (probabilistic modules; the thesis observed sigma -> 0).
* ``gim``         ``sim-paper`` with beta = 0 and deterministic modules (Greedy InfoMax; paper §4.1.4) whose output
  is a linear 1×1 conv after the last ReLU (``deterministic_head="linear"``): the SIM authors' GIM baseline,
  whose ``CNNEncoder.forward`` always applies its mu head (fdenoodt/Smooth-InfoMax, ``models/cnn_encoder.py``).
* ``gim-loewe``   ``gim`` with the ReLU output (``deterministic_head="relu"``): Löwe et al.'s GIM.
* ``cpc``         ``gim``'s layers (linear 1×1 heads at the module boundaries, the authors'
  ``cpc_audio_de_boer_extra_layers``), trained end to end by the GRU's loss only (no
  gradient isolation; paper §4.1.4). The stages are taps at the module-equivalent layers (after conv2,
  conv4, conv5 and the GRU) so per-module tables and figures compare like with like (the paper does the
  same: "we use the equivalent layer", §4.3); only the last stage has a loss.
* ``supervised``  paper Table 2's supervised row: ``cpc``'s encoder (5 convs + GRU 256, taps as ``cpc``)
  trained end to end from random init with a linear classifier on the time-averaged GRU output,
  cross-entropy on the syllable labels (9 classes; the vowel is a function of the syllable, so one run
  serves both probes; ``model.supervised_labels=vowel`` trains on the 3 vowels instead, as the authors'
  code does for its vowel number), syllables cut at their boundaries and zero-padded at both ends (paper
  §4.2) to 8800 samples (thesis Appendix A); Adam lr 1e-3, 50 epochs, batch 64. The paper does not
  describe this baseline's training; lr, epochs and batch are those of the authors' syllable classifier
  (fdenoodt/Smooth-InfoMax, config_code/sim_setup.py: CLASSIFIER_CONFIG_SYLLABLES), which their
  linear_classifiers/logistic_regression.py trains together with the encoder in its
  ModelType.FULLY_SUPERVISED mode. See sim_models/supervised.py.
* ``tiny``        ours: the CPC layers at 48 channels with paddings (3, 2, 1, 1, 1) (10240 -> 2048 -> 512 |
  256 -> 128 -> 64 frames), two probabilistic modules [conv1, conv2] | [conv3, conv4, conv5] and a GRU of 48;
  Adam lr 2e-3, batch 8. Trains in minutes on 2 CPU cores (the demo). Two changes make it learn within
  that budget: beta = 0.001 and logvar heads whose bias starts at -4 (sigma ~ 0.14). With beta = 0.01 and
  PyTorch's default init (sigma ~ 1 while mu ~ 1e-3) the samples are noise and the NCE stayed at chance
  (log 11, accuracy 1/11) through 2 epochs of the demo data. Its beta was chosen with kl_reduction="dims",
  which it keeps.

``model.deterministic_head`` (deterministic modules only): "relu" (default; the last conv's ReLU output) or
"linear" (a 1×1 conv without activation on top, the SIM authors' baselines); see modules.ConvModule.

``model.kl_reduction`` defaults to "dims" (the paper's formula; the loss functional's default too); the
named configs set the reduction their beta was tuned with, as said above.

``train.autocast`` (issue 17): None (default, fp32 throughout), "bfloat16" or "float16": each step's forward
and losses (and validation's) run under ``torch.autocast(<the model's device type>, dtype)``; the backward and
the optimiser steps run outside it, on fp32 parameters. "float16" needs CUDA and uses a GradScaler
(sim_models/mixed_precision.py); bfloat16 needs none. ``train.autocast=none`` on the command line means None.

Overrides are dotted ``key=value`` strings parsed as YAML values: ``model.beta=0``,
``train.lr=1e-3``, ``model.channels=[64,64,64,64,64]``, ``train.autocast=bfloat16``.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from .atomic_write import atomic_write_text

from .modules import DETERMINISTIC_HEADS
from .encoder_spec import (FLAT_KEYS, OLD_FLAT_DEFAULTS, PER_CONV_KEYS, LayerConfig, ModuleConfig, as_module_config,
                           encoder_from_flat, flat_view, per_conv, set_per_conv)

__all__ = ["ModelConfig", "TrainConfig", "DataConfig", "Config", "CONFIG_NAMES", "get_config", "apply_overrides",
           "save_config", "load_config", "LayerConfig", "ModuleConfig", "paper_encoder", "OBJECTIVES",
           "AUTOCAST_DTYPES"]

OBJECTIVES = ("infonce", "supervised")
AUTOCAST_DTYPES = ("bfloat16", "float16")  # train.autocast (None: no autocast); see sim_models/mixed_precision.py
SUPERVISED_LABELS = ("syllable", "vowel")


def _conv(kernel, stride, padding, channels) -> LayerConfig:
    return LayerConfig("conv", kernel, stride, padding, channels)


def paper_encoder(channels: int = 512) -> list:
    """Paper Table 1: [conv1, conv2] | [conv3, conv4] | [conv5], 1×1 heads; 10240 -> 2047, 511 | 256, 129 | 64."""
    c = channels
    return [ModuleConfig([_conv(10, 5, 2, c), _conv(8, 4, 2, c)]),
            ModuleConfig([_conv(4, 2, 2, c), _conv(4, 2, 2, c)]),
            ModuleConfig([_conv(4, 2, 1, c)])]


def thesis_encoder(channels: int = 32) -> list:
    """Thesis Tables 4.1 / 4.2 (heads: Conv(3, 1, 2) and Conv(3, 1, 1)); 10240 -> 54 | 13 frames."""
    c = channels
    pool = LayerConfig("maxpool", 8, 4, 0)
    return [ModuleConfig([_conv(10, 4, 2, c), pool, _conv(8, 3, 2, c), LayerConfig("maxpool", 8, 4, 0)],
                         head_kernel=3, head_padding=2),
            ModuleConfig([_conv(6, 2, 2, c), _conv(6, 2, 2, c)], head_kernel=3, head_padding=1)]


@dataclass
class ModelConfig:
    """The model. Construct with ``encoder=[ModuleConfig, ...]`` or, as before, with the flat keys
    (``ModelConfig(channels=[8] * 5, modules=[[0, 1], [2, 3, 4]], maxpool=[0, 0])``: keys left out take the
    old flat defaults, see encoder_spec.OLD_FLAT_DEFAULTS)."""
    encoder: list = field(default_factory=paper_encoder)  # ModuleConfig per encoder module (dicts are converted)
    probabilistic: bool = True       # SIM: mu / logvar heads and a sample; False: GIM / CPC
    ar_hidden: int = 256             # GRU module width; 0 = no GRU module
    end_to_end: bool = False         # CPC: no detach, only the last module's loss trains everything
    prediction_steps: int = 10       # K
    negative_samples: int = 10       # N
    beta: float = 0.01
    sampler: str = "gim"
    kl_reduction: str = "dims"       # "dims" (paper's formula) | "time" (authors' code)
    reduction: str = "mean"          # "mean" | "sum" (CPC)
    subsample_window: int | None = None
    logvar_bias_init: float | None = None  # constant init of the logvar heads' bias (None: PyTorch's default)
    independent_context_sample: bool = False  # True: context and targets are two independent samples (authors' code)
    deterministic_head: str = "relu"  # probabilistic=False: "relu" (Löwe et al.'s GIM) | "linear" (SIM authors' GIM/CPC)
    loss_backend: str = "auto"
    objective: str = "infonce"       # "infonce" (self-supervised) | "supervised" (cross-entropy on labels, last stage)
    supervised_labels: str = "syllable"  # objective="supervised": "syllable" (9 classes) | "vowel" (3)

    def __post_init__(self):
        if not isinstance(self.encoder, (list, tuple)) or not self.encoder:
            raise ValueError(f"model.encoder must be a non-empty list of modules, got {self.encoder!r}")
        try:
            self.encoder = [as_module_config(m) for m in self.encoder]
        except (ValueError, TypeError) as e:
            raise type(e)(f"model.encoder: {e}") from e
        if self.beta < 0:
            raise ValueError(f"model.beta must be >= 0, got {self.beta}")
        if self.beta > 0 and not self.probabilistic:
            raise ValueError("model.beta > 0 needs model.probabilistic=True (a deterministic module has no KL term)")
        if self.deterministic_head not in DETERMINISTIC_HEADS:
            raise ValueError(f"model.deterministic_head must be one of {DETERMINISTIC_HEADS}, got {self.deterministic_head!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"model.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.supervised_labels not in SUPERVISED_LABELS:
            raise ValueError(f"model.supervised_labels must be one of {SUPERVISED_LABELS}, got {self.supervised_labels!r}")
        if self.objective == "supervised" and not self.end_to_end:
            raise ValueError("model.objective='supervised' trains the encoder end to end: set model.end_to_end=true")

    # -- the flat format, read-only views (and per-conv setters) for code written against it ------------
    @property
    def kernel_sizes(self) -> list:
        return per_conv(self.encoder, "kernel_sizes")

    @kernel_sizes.setter
    def kernel_sizes(self, values):
        self.encoder = set_per_conv(self.encoder, "kernel_sizes", values)

    @property
    def strides(self) -> list:
        return per_conv(self.encoder, "strides")

    @strides.setter
    def strides(self, values):
        self.encoder = set_per_conv(self.encoder, "strides", values)

    @property
    def paddings(self) -> list:
        return per_conv(self.encoder, "paddings")

    @paddings.setter
    def paddings(self, values):
        self.encoder = set_per_conv(self.encoder, "paddings", values)

    @property
    def channels(self) -> list:
        """Output channels per conv layer, in order over the modules."""
        return per_conv(self.encoder, "channels")

    @channels.setter
    def channels(self, values):
        self.encoder = set_per_conv(self.encoder, "channels", values)

    @property
    def modules(self) -> list:
        """Conv-layer indices per module (0-based over the whole encoder)."""
        out, i = [], 0
        for m in self.encoder:
            k = len(m.convs())
            out.append(list(range(i, i + k)))
            i += k
        return out

    @property
    def maxpool(self) -> list:
        """Flat format: MaxPool1d(q) at the end of each module, 0 = none; ValueError if the encoder has no flat form."""
        return flat_view(self.encoder)["maxpool"]


_dataclass_init = ModelConfig.__init__


def _model_init(self, *args, **kwargs):
    flat = {k: kwargs.pop(k) for k in FLAT_KEYS if k in kwargs}
    if flat:
        if "encoder" in kwargs or (args and len(args) >= 1):
            given = kwargs.get("encoder", args[0] if args else None)
            kwargs["encoder"] = _apply_flat([as_module_config(m) for m in given], flat)
        else:
            kwargs["encoder"] = _apply_flat(None, flat)
        if args:
            args = args[1:]
    _dataclass_init(self, *args, **kwargs)


_model_init.__doc__ = _dataclass_init.__doc__
_model_init.__wrapped__ = _dataclass_init
ModelConfig.__init__ = _model_init


def _apply_flat(encoder, flat: dict) -> list:
    """``encoder`` (None: the old flat defaults) with the flat keys in ``flat`` applied. Per-conv keys alone
    work on any encoder; ``modules`` / ``maxpool`` need an encoder the flat format can express."""
    if encoder is not None and set(flat) <= set(PER_CONV_KEYS):
        for k, v in flat.items():
            encoder = set_per_conv(encoder, k, v)
        return encoder
    base = dict(OLD_FLAT_DEFAULTS) if encoder is None else flat_view(encoder)
    base.update(flat)
    return encoder_from_flat(**{k: base[k] for k in FLAT_KEYS})


# Where a data-parallel process draws its negatives from (docs/distributed.md): "global" = the targets of the
# whole global batch, gathered from every process (the loss one process computes on that batch);
# "local" = its own batch_size / P examples only (no collective; a different, smaller contrastive problem).
NEGATIVES = ("global", "local")


@dataclass
class TrainConfig:
    lr: float = 2e-4
    lr_decay: float = 1.0            # ExponentialLR gamma, stepped once per epoch
    batch_size: int = 8
    epochs: int = 10
    mode: str = "parallel"           # "parallel" | "sequential" (module m trains while 1..m-1 are frozen)
    seed: int = 0
    checkpoint_every: int = 200      # steps; a checkpoint is also written at every epoch end and at the end
    log_every: int = 10              # steps
    max_steps: int | None = None     # stop (with a checkpoint) after this many steps in total
    num_threads: int = 0             # torch.set_num_threads; 0 = leave as is
    validate: bool = True            # with a validation set: every module's loss on it at each epoch end
    device: str = "auto"             # single process: "auto" (cuda when available) | "cpu" | "cuda" (torchrun: per rank)
    autocast: str | None = None      # None | "bfloat16" | "float16" (CUDA only): forward + losses under torch.autocast
    negatives: str = "global"        # data parallel: "global" (every process's targets) | "local" (its own batch's)

    def __post_init__(self):
        if isinstance(self.autocast, str) and self.autocast.lower() in ("none", "null", ""):
            self.autocast = None  # the command line's train.autocast=none
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"train.autocast must be None (no autocast) or one of {AUTOCAST_DTYPES}, "
                             f"got {self.autocast!r}")
        if self.negatives not in NEGATIVES:
            raise ValueError(f"train.negatives must be one of {NEGATIVES}, got {self.negatives!r}")
        if self.mode not in ("parallel", "sequential"):
            raise ValueError(f"train.mode must be 'parallel' or 'sequential', got {self.mode!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.batch_size < 1 or self.epochs < 0:
            raise ValueError(f"train.batch_size must be >= 1 and train.epochs >= 0, got {self.batch_size}, {self.epochs}")


@dataclass
class DataConfig:
    sample_rate: int = 16000
    length: int = 10240              # samples per training example (crop / zero-pad); paper §4.1.1
    segment_length: int = 8800       # objective="supervised": syllables zero-padded at both ends to this (thesis App. A)


@dataclass
class Config:
    name: str = "sim-paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        d = dict(d)
        unknown = set(d) - {"name", "model", "train", "data"}
        if unknown:
            raise ValueError(f"config: unknown sections {sorted(unknown)}")
        return cls(name=d.get("name", "custom"), model=_build(ModelConfig, d.get("model", {}), "model"),
                   train=_build(TrainConfig, d.get("train", {}), "train"), data=_build(DataConfig, d.get("data", {}), "data"))


def _build(kind, values: dict, section: str):
    if not isinstance(values, dict):
        raise ValueError(f"config.{section} must be a mapping of keys to values, got {type(values).__name__} {values!r}")
    names = {f.name for f in dataclasses.fields(kind)}
    if kind is ModelConfig:
        names |= set(FLAT_KEYS)  # the flat format of earlier runs (see _model_init)
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"config.{section}: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    return kind(**values)


def _sim_paper() -> Config:
    m = ModelConfig(encoder=paper_encoder(), ar_hidden=256, prediction_steps=10, negative_samples=10, beta=0.01,
                    kl_reduction="time", independent_context_sample=True, subsample_window=128)
    return Config("sim-paper", m, TrainConfig(lr=2e-4, batch_size=8, epochs=1000))


SMALL_CHANNELS = 48
# The paper's beta = 0.01 ("time": summed over T frames, averaged over C channels) costs beta * T / C per nat and
# frame: 0.01 * 511 / 512 in module 1 at 512 channels. The same price at 48 channels is beta = 0.01 * 48 / 512.
SMALL_BETA = 0.01 * SMALL_CHANNELS / 512


def _sim_small() -> Config:
    m = ModelConfig(encoder=paper_encoder(SMALL_CHANNELS), ar_hidden=SMALL_CHANNELS, prediction_steps=10,
                    negative_samples=10, beta=SMALL_BETA, kl_reduction="time", independent_context_sample=True,
                    subsample_window=128)
    return Config("sim-small", m, TrainConfig(lr=2e-4, batch_size=8, epochs=100, checkpoint_every=200, log_every=10))


def _vgim_thesis() -> Config:
    # Batch 171 (thesis Table 4.2) over our 681 training words gives 3 full batches per epoch; the trainer
    # drops the last partial one (168 words), which the thesis does not say it did (a known deviation).
    m = ModelConfig(encoder=thesis_encoder(), ar_hidden=0, prediction_steps=12, negative_samples=10, beta=0.0035,
                    kl_reduction="time")
    return Config("vgim-thesis", m, TrainConfig(lr=0.01, lr_decay=0.995, batch_size=171, epochs=800))


def _vgim_thesis_gim() -> Config:
    c = _vgim_thesis()
    c.name, c.model.beta = "vgim-thesis-gim", 0.0
    return c


def _gim() -> Config:
    c = _sim_paper()
    c.name, c.model.beta, c.model.probabilistic, c.model.deterministic_head = "gim", 0.0, False, "linear"
    return c


def _gim_loewe() -> Config:
    c = _gim()
    c.name, c.model.deterministic_head = "gim-loewe", "relu"
    return c


def _cpc() -> Config:
    c = _gim()
    c.name, c.model.end_to_end = "cpc", True
    return c


def _supervised() -> Config:
    c = _cpc()
    c.name, c.model.objective, c.model.supervised_labels = "supervised", "supervised", "syllable"
    c.train.lr, c.train.epochs, c.train.batch_size = 1e-3, 50, 64
    return c


def _tiny() -> Config:
    m = ModelConfig(channels=[48] * 5, modules=[[0, 1], [2, 3, 4]], maxpool=[0, 0], ar_hidden=48, beta=0.001,
                    logvar_bias_init=-4.0)  # flat keys: the old paddings (3, 2, 1, 1, 1), see the module docstring
    return Config("tiny", m, TrainConfig(lr=2e-3, batch_size=8, epochs=8, checkpoint_every=100, log_every=5))


_NAMED = {"sim-paper": _sim_paper, "vgim-thesis": _vgim_thesis, "vgim-thesis-gim": _vgim_thesis_gim, "gim": _gim,
          "gim-loewe": _gim_loewe, "cpc": _cpc, "supervised": _supervised, "tiny": _tiny, "sim-small": _sim_small}
CONFIG_NAMES = tuple(_NAMED)


def get_config(name: str) -> Config:
    """A fresh copy of a named config, or the config stored in a .yaml/.yml/.json file."""
    if name in _NAMED:
        return _NAMED[name]()
    if Path(name).suffix in (".yaml", ".yml", ".json"):
        if not Path(name).is_file():
            raise FileNotFoundError(f"config file not found: {name}")
        return load_config(name)
    raise ValueError(f"config must be one of {CONFIG_NAMES} or a .yaml/.json file, got {name!r}")


def apply_overrides(cfg: Config, overrides) -> Config:
    """Return a copy of ``cfg`` with dotted ``section.key=value`` overrides (values parsed as YAML).

    ``model.kernel_sizes`` / ``strides`` / ``paddings`` / ``channels`` (one value per conv layer) set those
    attributes of every conv layer of ``model.encoder``; ``model.modules`` / ``model.maxpool`` re-cut it in the
    flat format (see the module docstring)."""
    d = copy.deepcopy(cfg.to_dict())
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"override must look like section.key=value, got {item!r}")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or parts[0] not in ("model", "train", "data"):
            raise ValueError(f"override key must be model.<key>, train.<key> or data.<key>, got {key!r}")
        section, name = parts
        flat_key = section == "model" and name in FLAT_KEYS  # the flat format, applied on the encoder (_apply_flat)
        if name not in d[section] and not flat_key:
            raise ValueError(f"override {key!r}: config.{section} has no key {name!r}; known: {sorted(d[section])}")
        d[section][name] = _parse_value(raw)
    return Config.from_dict(d)


def _parse_value(raw: str):
    """YAML scalar/list parsing, plus numbers YAML 1.1 leaves as strings ("2e-4" -> 0.0002)."""
    v = yaml.safe_load(raw)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def save_config(cfg: Config, path) -> Path:
    """Write ``cfg`` as YAML (.yaml/.yml) or JSON (.json)."""
    path = Path(path)
    d = cfg.to_dict()
    if path.suffix == ".json":
        text = json.dumps(d, indent=2)
    elif path.suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(d, sort_keys=False)
    else:
        raise ValueError(f"config path must end in .yaml, .yml or .json, got {str(path)!r}")
    # atomic (temp file + os.replace): a run killed here keeps the previous file, which --resume reads
    return atomic_write_text(path, text)  # 0644: a config is meant to be read by others


def load_config(path) -> Config:
    """The config in a .yaml/.yml/.json file; a bad file or an unknown key raises ValueError naming both."""
    path = Path(path)
    text = path.read_text()
    try:
        d = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    try:
        return Config.from_dict(d)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from e
