"""The encoder as data: a module is a list of layers (conv or max-pool) plus its mu / logvar heads.

    LayerConfig(type="conv", kernel=10, stride=5, padding=2, channels=512)   Conv1d + ReLU
    LayerConfig(type="maxpool", kernel=8, stride=4)                          MaxPool1d (channels unchanged)
    StageConfig(layers=[...], head_kernel=1, head_padding=0)                 + parallel mu / logvar Conv1d heads
                                                                               (stride 1, no ReLU)

Frame arithmetic (PyTorch's Conv1d / MaxPool1d, dilation 1, floor mode):
T_out = floor((T_in + 2·padding − kernel) / stride) + 1, for every layer and for the heads.

The flat format of earlier runs (``kernel_sizes``, ``strides``, ``paddings``, ``channels`` per conv
layer, ``modules`` = conv-layer indices per module, ``maxpool`` = one MaxPool1d(q) (kernel = stride = q)
at the end of a module, 1×1 heads) is a special case: ``encoder_from_flat`` converts it (so an old
RUN_DIR/config.yaml builds the same model, parameter names included; sim_models/config/legacy.py) and
``flat_view`` converts back when an encoder can be written that way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LayerConfig", "StageConfig", "LAYER_TYPES", "as_stage_config", "encoder_from_flat", "flat_view",
           "conv_count", "set_per_conv", "per_conv"]

LAYER_TYPES = ("conv", "maxpool")
_PER_CONV_ATTR = {"kernel_sizes": "kernel", "strides": "stride", "paddings": "padding", "channels": "channels"}

def _int(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


@dataclass
class LayerConfig:
    """One layer of an encoder module.

    type: "conv" (Conv1d followed by ReLU) or "maxpool" (MaxPool1d, keeps the channels).
    kernel, stride, padding: in frames of the layer's input (samples for the first layer).
    channels: output channels of a conv layer (required); None for a max-pool.
    """
    type: str = "conv"
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    channels: int | None = None

    def __post_init__(self):
        if self.type not in LAYER_TYPES:
            raise ValueError(f"layer type must be one of {LAYER_TYPES}, got {self.type!r}")
        _int(self.kernel, "layer kernel", 1)
        _int(self.stride, "layer stride", 1)
        _int(self.padding, "layer padding", 0)
        if self.type == "conv":
            if self.channels is None:
                raise ValueError("a conv layer needs channels (its output channels)")
            _int(self.channels, "layer channels", 1)
        elif self.channels is not None:
            raise ValueError(f"a maxpool layer keeps its input's channels: channels must be None, got {self.channels}")
        elif 2 * self.padding > self.kernel:
            raise ValueError(f"maxpool padding must be at most half its kernel (PyTorch), got kernel {self.kernel}, "
                             f"padding {self.padding}")

    def out_frames(self, t: int) -> int:
        """Frames after this layer for ``t`` input frames (may be < 1: input too short)."""
        return (t + 2 * self.padding - self.kernel) // self.stride + 1


@dataclass
class StageConfig:
    """One encoder module: ``layers`` in order, then the parallel mu and logvar heads
    Conv1d(C, C, head_kernel, stride 1, head_padding) (probabilistic modules only; deterministic
    modules output the last layer's activations and have no heads)."""
    layers: list = field(default_factory=list)
    head_kernel: int = 1
    head_padding: int = 0

    def __post_init__(self):
        if not isinstance(self.layers, (list, tuple)) or not self.layers:
            raise ValueError(f"a module needs a non-empty list of layers, got {self.layers!r}")
        self.layers = [_as_layer(x) for x in self.layers]
        _int(self.head_kernel, "head_kernel", 1)
        _int(self.head_padding, "head_padding", 0)

    def out_frames(self, t: int, heads: bool = True) -> int:
        """Frames after the module (after its heads when ``heads``) for ``t`` input frames."""
        for layer in self.layers:
            t = layer.out_frames(t)
        if heads:
            t = t + 2 * self.head_padding - self.head_kernel + 1
        return t

    def convs(self) -> list:
        return [x for x in self.layers if x.type == "conv"]


def _as_layer(x) -> LayerConfig:
    if isinstance(x, LayerConfig):
        return x
    if isinstance(x, dict):
        unknown = set(x) - {"type", "kernel", "stride", "padding", "channels"}
        if unknown:
            raise ValueError(f"layer: unknown keys {sorted(unknown)}; known: type, kernel, stride, padding, channels")
        return LayerConfig(**x)
    raise TypeError(f"a layer must be a LayerConfig or a mapping, got {type(x).__name__} {x!r}")


def as_stage_config(x) -> StageConfig:
    """A StageConfig from itself or from its dict form ({"layers": [...], "head_kernel": .., "head_padding": ..})."""
    if isinstance(x, StageConfig):
        return x
    if isinstance(x, dict):
        unknown = set(x) - {"layers", "head_kernel", "head_padding"}
        if unknown:
            raise ValueError(f"module: unknown keys {sorted(unknown)}; known: layers, head_kernel, head_padding")
        return StageConfig(**x)
    raise TypeError(f"a module must be a StageConfig or a mapping, got {type(x).__name__} {x!r}")


def conv_count(encoder) -> int:
    return sum(len(m.convs()) for m in encoder)


def per_conv(encoder, key: str) -> list:
    """The flat per-conv-layer list ``key`` ("kernel_sizes", "strides", "paddings", "channels") of an encoder."""
    return [getattr(c, _PER_CONV_ATTR[key]) for m in encoder for c in m.convs()]


def set_per_conv(encoder, key: str, values) -> list:
    """A copy of ``encoder`` with the per-conv-layer attribute ``key`` set from ``values`` (one per conv layer)."""
    n = conv_count(encoder)
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise ValueError(f"model.{key} needs one entry per conv layer ({n}), got {values!r}")
    it, out = iter(values), []
    for m in encoder:
        layers = [LayerConfig(x.type, x.kernel, x.stride, x.padding, x.channels) for x in m.layers]
        for x in layers:
            if x.type == "conv":
                setattr(x, _PER_CONV_ATTR[key], next(it))
                x.__post_init__()
        out.append(StageConfig(layers, m.head_kernel, m.head_padding))
    return out


def encoder_from_flat(kernel_sizes, strides, paddings, channels, modules, maxpool) -> list:
    """The encoder that the flat format describes (see the module docstring). Raises ValueError naming the key."""
    n = len(kernel_sizes)
    if not (len(strides) == len(paddings) == len(channels) == n):
        raise ValueError(f"model: kernel_sizes, strides, paddings and channels need one entry per conv layer, got "
                         f"{n}, {len(strides)}, {len(paddings)}, {len(channels)}")
    flat = [i for m in modules for i in m]
    if flat != list(range(n)):
        raise ValueError(f"model.modules must split the layers 0..{n - 1} in order, got {modules}")
    if len(maxpool) != len(modules):
        raise ValueError(f"model.maxpool needs one entry per module ({len(modules)}), got {maxpool}")
    encoder = []
    for ids, q in zip(modules, maxpool):
        layers = [LayerConfig("conv", kernel_sizes[i], strides[i], paddings[i], channels[i]) for i in ids]
        if q:
            layers.append(LayerConfig("maxpool", q, q, 0))
        encoder.append(StageConfig(layers))
    return encoder


def flat_view(encoder) -> dict:
    """The flat keys of ``encoder``; ValueError when the flat format cannot express it (a max-pool that is not
    the module's last layer or has kernel != stride or padding, more than one, or heads other than 1×1)."""
    out = {k: per_conv(encoder, k) for k in _PER_CONV_ATTR}
    modules, maxpool, i = [], [], 0
    for j, m in enumerate(encoder):
        pools = [x for x in m.layers if x.type == "maxpool"]
        tail_pool = len(pools) == 1 and m.layers[-1] is pools[0] and pools[0].kernel == pools[0].stride \
            and pools[0].padding == 0
        if (pools and not tail_pool) or (m.head_kernel, m.head_padding) != (1, 0) or not m.convs():
            raise ValueError(f"model.encoder module {j + 1} ({_describe(m)}) has no flat form (model.modules / "
                             f"model.maxpool): edit model.encoder instead")
        k = len(m.convs())
        modules.append(list(range(i, i + k)))
        maxpool.append(pools[0].kernel if pools else 0)
        i += k
    out.update(modules=modules, maxpool=maxpool)
    return out


def _describe(m: StageConfig) -> str:
    parts = [f"{x.type}({x.kernel},{x.stride},{x.padding})" for x in m.layers]
    return " ".join(parts) + f" heads({m.head_kernel},1,{m.head_padding})"
