"""The run configuration: schema (schema.py), encoder layers (encoder_spec.py), the old flat format
(legacy.py), named presets (presets.py, a registry) and files / overrides (files.py). This package's
public names are re-exported here; nothing in it imports from the rest of sim_models but util/."""
from sim_models.config.encoder_spec import LayerConfig, StageConfig
from sim_models.config.files import CONFIG_SUFFIXES, apply_overrides, get_config, load_config, save_config
from sim_models.config.presets import PRESETS, SMALL_BETA, SMALL_CHANNELS, register_preset
from sim_models.config.schema import (AUTOCAST_DTYPES, Config, DataConfig, DETERMINISTIC_HEADS, DEVICES, ModelConfig,
                                      NEGATIVES, OBJECTIVES, SUPERVISED_LABELS, TRAIN_MODES, TrainConfig, paper_encoder,
                                      thesis_encoder)

__all__ = ["LayerConfig", "StageConfig", "CONFIG_SUFFIXES", "apply_overrides", "get_config", "load_config",
           "save_config", "PRESETS", "SMALL_BETA", "SMALL_CHANNELS", "register_preset", "AUTOCAST_DTYPES",
           "DETERMINISTIC_HEADS", "DEVICES", "NEGATIVES", "OBJECTIVES", "SUPERVISED_LABELS", "TRAIN_MODES", "Config",
           "DataConfig", "ModelConfig", "TrainConfig", "paper_encoder", "thesis_encoder"]
