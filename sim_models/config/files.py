"""Configs in and out: a named preset or a file (``get_config``), YAML / JSON round trips, command-line overrides.

Overrides are dotted ``section.key=value`` strings parsed as YAML values: ``model.beta=0``, ``train.lr=1e-3``,
``model.channels=[64,64,64,64,64]`` (one value per conv layer, applied to every conv of ``model.encoder``),
``train.autocast=bfloat16`` (``train.autocast=none`` means None). Errors: ValueError naming the key or the file.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

from sim_models.config.legacy import FLAT_KEYS
from sim_models.config.presets import PRESETS
from sim_models.config.schema import Config
from sim_models.util.atomic_write import atomic_write_text

__all__ = ["get_config", "apply_overrides", "save_config", "load_config", "CONFIG_SUFFIXES"]

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def get_config(name: str) -> Config:
    """A fresh copy of a registered preset (sim_models/config/presets.py), or the config in a .yaml/.yml/.json file."""
    if name in PRESETS:
        return PRESETS[name]()
    if Path(name).suffix in CONFIG_SUFFIXES:
        if not Path(name).is_file():
            raise FileNotFoundError(f"config file not found: {name}")
        return load_config(name)
    raise ValueError(f"config must be one of {tuple(PRESETS)} or a .yaml/.json file, got {name!r}")


def apply_overrides(cfg: Config, overrides) -> Config:
    """A copy of ``cfg`` with dotted ``section.key=value`` overrides (values parsed as YAML).

    ``model.kernel_sizes`` / ``strides`` / ``paddings`` / ``channels`` (one value per conv layer) set those
    attributes of every conv layer of ``model.encoder``; ``model.modules`` / ``model.maxpool`` re-cut it in the
    flat format (sim_models/config/legacy.py)."""
    d = copy.deepcopy(cfg.to_dict())
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"override must look like section.key=value, got {item!r}")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or parts[0] not in ("model", "train", "data"):
            raise ValueError(f"override key must be model.<key>, train.<key> or data.<key>, got {key!r}")
        section, name = parts
        flat_key = section == "model" and name in FLAT_KEYS  # the flat format, folded into the encoder by from_dict
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
    """Write ``cfg`` as YAML (.yaml/.yml) or JSON (.json), atomically (a run killed here keeps the previous file,
    which --resume reads); mode 0644: a config is meant to be read by others."""
    path = Path(path)
    d = cfg.to_dict()
    if path.suffix == ".json":
        text = json.dumps(d, indent=2)
    elif path.suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(d, sort_keys=False)
    else:
        raise ValueError(f"config path must end in .yaml, .yml or .json, got {str(path)!r}")
    return atomic_write_text(path, text)


def load_config(path) -> Config:
    """The config in a .yaml/.yml/.json file (old flat-format files too); a bad file or an unknown key raises
    ValueError naming both."""
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
