"""The run configuration as data: ``Config`` = ``model`` + ``train`` + ``data``, each a dataclass that checks itself.

    model  - the encoder (stages = lists of conv / max-pool layers + mu/logvar heads, sim_models/config/encoder_spec.py),
             the GRU stage, the loss options
    train  - optimiser, schedule, batch, epochs, training mode, device, mixed precision, checkpoint and log cadence
    data   - audio length and sample rate

``model.encoder`` is a list of stages, each a list of layers plus its heads::

    model:
      encoder:
      - layers:
        - {type: conv, kernel: 10, stride: 5, padding: 2, channels: 512}
        - {type: conv, kernel: 8, stride: 4, padding: 2, channels: 512}
        head_kernel: 1
        head_padding: 0
      - ...

``Config.from_dict`` reads a config file's mapping; the flat keys of earlier runs (``kernel_sizes``,
``strides``, ``paddings``, ``channels``, ``modules``, ``maxpool``) are converted there, explicitly, by
sim_models/config/legacy.py, so a config.yaml written before the layer-list format builds the same model.
The flat per-conv lists stay readable (and settable) as properties of ``ModelConfig``.

Errors: every check raises ValueError (TypeError for a wrongly typed layer) naming the ``section.key``.
Named presets: sim_models/config/presets.py; files and overrides: sim_models/config/files.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sim_models.config.encoder_spec import LayerConfig, StageConfig, as_stage_config, flat_view, per_conv, set_per_conv
from sim_models.config.legacy import upgrade_model_section

__all__ = ["ModelConfig", "TrainConfig", "DataConfig", "Config", "OBJECTIVES", "AUTOCAST_DTYPES", "SUPERVISED_LABELS",
           "NEGATIVES", "DETERMINISTIC_HEADS", "TRAIN_MODES", "DEVICES", "paper_encoder", "thesis_encoder"]

OBJECTIVES = ("infonce", "supervised")
AUTOCAST_DTYPES = ("bfloat16", "float16")  # train.autocast (None: no autocast); sim_models/training/mixed_precision.py
SUPERVISED_LABELS = ("syllable", "vowel")
DETERMINISTIC_HEADS = ("relu", "linear")  # a deterministic conv stage's output (sim_models/model/stages.py)
TRAIN_MODES = ("parallel", "sequential")
DEVICES = ("auto", "cpu", "cuda")


def _conv(kernel, stride, padding, channels) -> LayerConfig:
    return LayerConfig("conv", kernel, stride, padding, channels)


def paper_encoder(channels: int = 512) -> list:
    """Paper Table 1: [conv1, conv2] | [conv3, conv4] | [conv5], 1×1 heads; 10240 -> 2047, 511 | 256, 129 | 64."""
    c = channels
    return [StageConfig([_conv(10, 5, 2, c), _conv(8, 4, 2, c)]),
            StageConfig([_conv(4, 2, 2, c), _conv(4, 2, 2, c)]),
            StageConfig([_conv(4, 2, 1, c)])]


def thesis_encoder(channels: int = 32) -> list:
    """Thesis Tables 4.1 / 4.2 (heads: Conv(3, 1, 2) and Conv(3, 1, 1)); 10240 -> 54 | 13 frames."""
    c = channels
    pool = LayerConfig("maxpool", 8, 4, 0)
    return [StageConfig([_conv(10, 4, 2, c), pool, _conv(8, 3, 2, c), LayerConfig("maxpool", 8, 4, 0)],
                         head_kernel=3, head_padding=2),
            StageConfig([_conv(6, 2, 2, c), _conv(6, 2, 2, c)], head_kernel=3, head_padding=1)]


def _check_choice(key: str, value, choices: tuple) -> None:
    """ValueError naming ``key`` (section.key) when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{key} must be one of {choices}, got {value!r}")


def _per_conv_property(key: str, doc: str) -> property:
    """A ModelConfig property reading (``per_conv``) and setting (``set_per_conv``) one flat per-conv list."""
    return property(lambda self: per_conv(self.encoder, key),
                    lambda self, values: setattr(self, "encoder", set_per_conv(self.encoder, key, values)), doc=doc)


@dataclass
class ModelConfig:
    """The model: ``encoder=[StageConfig, ...]`` (dicts are converted) plus the stage and loss options.
    A mapping in the old flat format goes through ``sim_models.config.legacy.upgrade_model_section`` first
    (``Config.from_dict`` does it; ``legacy.model_config_from_flat`` for code)."""
    encoder: list = field(default_factory=paper_encoder)  # StageConfig per encoder module (dicts are converted)
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
            self.encoder = [as_stage_config(m) for m in self.encoder]
        except (ValueError, TypeError) as e:
            raise type(e)(f"model.encoder: {e}") from e
        if self.beta < 0:
            raise ValueError(f"model.beta must be >= 0, got {self.beta}")
        if self.beta > 0 and not self.probabilistic:
            raise ValueError("model.beta > 0 needs model.probabilistic=True (a deterministic module has no KL term)")
        _check_choice("model.deterministic_head", self.deterministic_head, DETERMINISTIC_HEADS)
        _check_choice("model.objective", self.objective, OBJECTIVES)
        _check_choice("model.supervised_labels", self.supervised_labels, SUPERVISED_LABELS)
        if self.objective == "supervised" and not self.end_to_end:
            raise ValueError("model.objective='supervised' trains the encoder end to end: set model.end_to_end=true")

    # -- the flat per-conv lists as views (and per-conv setters), e.g. the override model.channels=[...] ----
    kernel_sizes = _per_conv_property("kernel_sizes", "Kernel size per conv layer, in order over the stages.")
    strides = _per_conv_property("strides", "Stride per conv layer.")
    paddings = _per_conv_property("paddings", "Padding per conv layer.")
    channels = _per_conv_property("channels", "Output channels per conv layer, in order over the stages.")

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
    snapshot_every: int = 0          # epochs: also keep the weights at every N-th epoch end (and at the start) in
                                     # RUN_DIR/snapshots/ for the per-unit KL trajectory (analysis/kl_trajectory.py); 0: none

    def __post_init__(self):
        if isinstance(self.autocast, str) and self.autocast.lower() in ("none", "null", ""):
            self.autocast = None  # the command line's train.autocast=none
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"train.autocast must be None (no autocast) or one of {AUTOCAST_DTYPES}, "
                             f"got {self.autocast!r}")
        _check_choice("train.negatives", self.negatives, NEGATIVES)
        if self.mode not in TRAIN_MODES:
            raise ValueError(f"train.mode must be 'parallel' or 'sequential', got {self.mode!r}")
        if self.device not in DEVICES:
            raise ValueError(f"train.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if not isinstance(self.snapshot_every, int) or self.snapshot_every < 0:
            raise ValueError(f"train.snapshot_every must be an int >= 0 (epochs; 0: no snapshots), got {self.snapshot_every!r}")
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
        values = upgrade_model_section(values)  # the flat format of earlier runs, converted explicitly
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"config.{section}: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    return kind(**values)

