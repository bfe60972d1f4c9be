"""Run configuration: dataclasses, the named configs, YAML/JSON round trips and command-line overrides.

A ``Config`` has three parts::

    model  - the encoder (conv layers cut into modules), the GRU module, the loss settings
    train  - optimiser, schedule, batch, epochs, training mode, checkpoint and log cadence
    data   - audio length and sample rate

Named configs (``get_config(name)``), with their sources:

* ``sim-paper``   Smooth InfoMax paper, Table 1: CPC/GIM audio encoder (5 conv layers, kernels
  (10, 8, 4, 4, 4), strides (5, 4, 2, 2, 2), 512 channels, downsampling x160: 10240 samples -> 64
  frames) cut into three probabilistic modules, layers [0, 1] | [2, 3] | [4], plus a GRU module of
  256; K = 10, N = 10, beta = 0.01; Adam lr 2e-4; batch 8. (The cut is ours: the paper says three
  modules but not where; this one gives each module a similar share of the compute.)
* ``vgim-thesis`` the V-GIM thesis, Tables 4.1 / 4.2: two modules of 32 channels, each ending
  in a max-pool; K = 12, beta = 0.0035; Adam lr 0.01 with exponential decay 0.995 per epoch.
  Our layer sizes (the CPC layers minus the last, as (kernel, stride, padding)): module 1 =
  conv(10, 5, 3) + conv(8, 4, 2) + MaxPool(2), module 2 = conv(4, 2, 1) + conv(4, 2, 1) + MaxPool(2):
  10240 samples -> 2048 -> 512 -> 256 | 128 -> 64 -> 32 frames (> K = 12). No GRU module.
* ``gim``         ``sim-paper`` with beta = 0 and deterministic modules (Greedy InfoMax).
* ``cpc``         one deterministic module (all 5 conv layers) and the GRU, trained end to end
  by the GRU's loss only (no gradient isolation): CPC.
* ``tiny``        the CPC layers at 48 channels, two probabilistic modules [0, 1] | [2, 3, 4] and a GRU
  of 48; Adam lr 2e-3, batch 8. Trains in minutes on 2 CPU cores (the demo). Two changes make it
  learn within that budget: beta = 0.001 and logvar heads whose bias starts at -4 (sigma ~ 0.14).
  With beta = 0.01 and PyTorch's default init (sigma ~ 1 while mu ~ 1e-3) the samples are noise and
  the NCE stayed at chance (log 11, accuracy 1/11) through 2 epochs of the demo data, with or
  without the bias init, while deterministic modules (beta = 0) at the same settings learned.

Overrides are dotted ``key=value`` strings parsed as YAML values: ``model.beta=0``,
``train.lr=1e-3``, ``model.channels=[64,64,64,64,64]``.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["ModelConfig", "TrainConfig", "DataConfig", "Config", "CONFIG_NAMES", "get_config", "apply_overrides",
           "save_config", "load_config"]

PAPER_KERNELS = [10, 8, 4, 4, 4]
PAPER_STRIDES = [5, 4, 2, 2, 2]
PAPER_PADDINGS = [3, 2, 1, 1, 1]  # GIM's encoder: exactly x160, 10240 samples -> 64 frames


@dataclass
class ModelConfig:
    kernel_sizes: list = field(default_factory=lambda: list(PAPER_KERNELS))
    strides: list = field(default_factory=lambda: list(PAPER_STRIDES))
    paddings: list = field(default_factory=lambda: list(PAPER_PADDINGS))
    channels: list = field(default_factory=lambda: [512] * 5)       # output channels per conv layer
    modules: list = field(default_factory=lambda: [[0, 1], [2, 3], [4]])  # conv layer indices per module
    maxpool: list = field(default_factory=lambda: [0, 0, 0])        # MaxPool1d kernel (= stride) after each module, 0 = none
    probabilistic: bool = True       # SIM: mu / logvar heads and a sample; False: GIM / CPC
    ar_hidden: int = 256             # GRU module width; 0 = no GRU module
    end_to_end: bool = False         # CPC: no detach, only the last module's loss trains everything
    prediction_steps: int = 10       # K
    negative_samples: int = 10       # N
    beta: float = 0.01
    sampler: str = "gim"
    kl_reduction: str = "dims"       # "dims" (paper) | "time" (authors' code)
    reduction: str = "mean"          # "mean" | "sum" (CPC)
    subsample_window: int | None = None
    logvar_bias_init: float | None = None  # constant init of the logvar heads' bias (None: PyTorch's default)
    independent_context_sample: bool = False  # True: context and targets are two independent samples (authors' code)
    loss_backend: str = "auto"

    def __post_init__(self):
        n = len(self.kernel_sizes)
        if not (len(self.strides) == len(self.paddings) == len(self.channels) == n):
            raise ValueError(f"model: kernel_sizes, strides, paddings and channels need one entry per conv layer, got "
                             f"{n}, {len(self.strides)}, {len(self.paddings)}, {len(self.channels)}")
        flat = [i for m in self.modules for i in m]
        if flat != list(range(n)):
            raise ValueError(f"model.modules must split the layers 0..{n - 1} in order, got {self.modules}")
        if len(self.maxpool) != len(self.modules):
            raise ValueError(f"model.maxpool needs one entry per module ({len(self.modules)}), got {self.maxpool}")
        if self.beta < 0:
            raise ValueError(f"model.beta must be >= 0, got {self.beta}")
        if self.beta > 0 and not self.probabilistic:
            raise ValueError("model.beta > 0 needs model.probabilistic=True (a deterministic module has no KL term)")


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

    def __post_init__(self):
        if self.mode not in ("parallel", "sequential"):
            raise ValueError(f"train.mode must be 'parallel' or 'sequential', got {self.mode!r}")
        if self.batch_size < 1 or self.epochs < 0:
            raise ValueError(f"train.batch_size must be >= 1 and train.epochs >= 0, got {self.batch_size}, {self.epochs}")


@dataclass
class DataConfig:
    sample_rate: int = 16000
    length: int = 10240              # samples per training example (crop / zero-pad)


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
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"config.{section}: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    return kind(**values)


def _sim_paper() -> Config:
    return Config("sim-paper", ModelConfig(), TrainConfig(lr=2e-4, batch_size=8))


def _vgim_thesis() -> Config:
    m = ModelConfig(kernel_sizes=[10, 8, 4, 4], strides=[5, 4, 2, 2], paddings=[3, 2, 1, 1], channels=[32] * 4, modules=[[0, 1], [2, 3]],
                    maxpool=[2, 2], ar_hidden=0, prediction_steps=12, beta=0.0035)
    return Config("vgim-thesis", m, TrainConfig(lr=0.01, lr_decay=0.995, batch_size=8))


def _gim() -> Config:
    c = _sim_paper()
    c.name, c.model.beta, c.model.probabilistic = "gim", 0.0, False
    return c


def _cpc() -> Config:
    m = ModelConfig(modules=[[0, 1, 2, 3, 4]], maxpool=[0], probabilistic=False, beta=0.0, end_to_end=True)
    return Config("cpc", m, TrainConfig(lr=2e-4, batch_size=8))


def _tiny() -> Config:
    m = ModelConfig(channels=[48] * 5, modules=[[0, 1], [2, 3, 4]], maxpool=[0, 0], ar_hidden=48, beta=0.001,
                    logvar_bias_init=-4.0)
    return Config("tiny", m, TrainConfig(lr=2e-3, batch_size=8, epochs=8, checkpoint_every=100, log_every=5))


_NAMED = {"sim-paper": _sim_paper, "vgim-thesis": _vgim_thesis, "gim": _gim, "cpc": _cpc, "tiny": _tiny}
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
    """Return a copy of ``cfg`` with dotted ``section.key=value`` overrides (values parsed as YAML)."""
    d = copy.deepcopy(cfg.to_dict())
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"override must look like section.key=value, got {item!r}")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or parts[0] not in ("model", "train", "data"):
            raise ValueError(f"override key must be model.<key>, train.<key> or data.<key>, got {key!r}")
        section, name = parts
        if name not in d[section]:
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
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a config is meant to be read by others
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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
