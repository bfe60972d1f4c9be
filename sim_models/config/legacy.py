"""The flat model format of earlier runs, converted explicitly where a config mapping is read.

Before the layer-list format (``model.encoder``), a config.yaml described the encoder with six flat keys::

    kernel_sizes, strides, paddings, channels   one entry per conv layer
    modules                                     conv-layer indices per stage, e.g. [[0, 1], [2, 3], [4]]
    maxpool                                     per stage: one MaxPool1d(q) (kernel = stride = q) at its end, 0 = none

``upgrade_model_section(values)`` turns a ``model`` mapping that holds any of them into one with ``encoder``
only: keys left out take the flat defaults of those runs (``OLD_FLAT_DEFAULTS``); per-conv keys alone, next
to an ``encoder``, set that attribute of every conv layer (the override ``model.channels=[8,8,8,8,8]``);
``modules`` / ``maxpool`` next to an ``encoder`` re-cut it when the flat format can express it. An old
RUN_DIR/config.yaml therefore builds the same model, parameter names included, and the checkpoint beside it
loads. ``Config.from_dict`` (config files, run folders, overrides) calls it; nothing else needs to.

Errors: ValueError naming the key (lists of different lengths, a ``modules`` split that is not 0..n-1 in
order, an encoder the flat format cannot express).
"""
from __future__ import annotations

from sim_models.config.encoder_spec import as_stage_config, encoder_from_flat, flat_view, set_per_conv

__all__ = ["FLAT_KEYS", "PER_CONV_KEYS", "OLD_FLAT_DEFAULTS", "upgrade_model_section"]

PER_CONV_KEYS = ("kernel_sizes", "strides", "paddings", "channels")  # one entry per conv layer
FLAT_KEYS = PER_CONV_KEYS + ("modules", "maxpool")

# The defaults of the flat ModelConfig before the layer-list format: what a flat config that leaves a key out
# meant. (Paddings 3, 2, 1, 1, 1 were this project's, not the paper's nor GIM's.)
OLD_FLAT_DEFAULTS = {"kernel_sizes": [10, 8, 4, 4, 4], "strides": [5, 4, 2, 2, 2], "paddings": [3, 2, 1, 1, 1],
                     "channels": [512] * 5, "modules": [[0, 1], [2, 3], [4]], "maxpool": [0, 0, 0]}


def upgrade_model_section(values: dict) -> dict:
    """``values`` (a config's ``model`` mapping) with its flat keys folded into ``encoder``; unchanged when it has none."""
    flat = {k: values[k] for k in FLAT_KEYS if k in values}
    if not flat:
        return values
    out = {k: v for k, v in values.items() if k not in FLAT_KEYS}
    encoder = None
    if out.get("encoder") is not None:
        try:
            encoder = [as_stage_config(m) for m in out["encoder"]]
        except (ValueError, TypeError) as e:
            raise type(e)(f"model.encoder: {e}") from e
    out["encoder"] = _apply_flat(encoder, flat)
    return out


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
