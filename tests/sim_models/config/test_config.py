import inspect

import pytest

from sim_models.config.legacy import upgrade_model_section
import torch

from sim_kernels import smooth_infonce
from sim_models.model.greedy import GreedyModel, count_frames, stage_layer_names
from sim_models.config import (PRESETS, Config, LayerConfig, ModelConfig, StageConfig, apply_overrides, get_config, load_config, save_config)
from sim_models.model.greedy import build_model


def _layer_frames(spec: StageConfig, t: int) -> list:
    out = []
    for layer in spec.layers:
        t = layer.out_frames(t)
        out.append(t)
    return out


def _shrunk(name, width=4):
    cfg = get_config(name)
    cfg.model.channels = [width] * len(cfg.model.channels)
    if cfg.model.ar_hidden:
        cfg.model.ar_hidden = 3
    return cfg


@pytest.mark.parametrize("name", PRESETS)
def test_named_config_frames_exceed_K(name):
    cfg = get_config(name)
    frames = count_frames(cfg.model, cfg.data.length)
    assert min(frames) > cfg.model.prediction_steps, frames


@pytest.mark.parametrize("name", PRESETS)
def test_count_frames_matches_a_real_forward(name):
    cfg = _shrunk(name)
    model = build_model(cfg).eval()
    with torch.no_grad():
        outs = model.encode(torch.randn(1, cfg.data.length))
    assert [o.z.shape[1] for o in outs] == count_frames(cfg.model, cfg.data.length)


def test_sim_paper_is_table_1():
    p = get_config("sim-paper")
    assert p.model.kernel_sizes == [10, 8, 4, 4, 4] and p.model.strides == [5, 4, 2, 2, 2]
    assert p.model.paddings == [2, 2, 2, 2, 1] and p.model.channels == [512] * 5
    assert p.model.modules == [[0, 1], [2, 3], [4]] and p.model.maxpool == [0, 0, 0]
    assert all((m.head_kernel, m.head_padding) == (1, 0) for m in p.model.encoder)
    assert p.model.probabilistic and p.model.ar_hidden == 256
    # Table 1's output column, layer by layer: 10240 -> 2047 -> 511 | 256 -> 129 | 64 (+ GRU 64 x 256)
    t, per_layer = 10240, []
    for spec in p.model.encoder:
        per_layer += _layer_frames(spec, t)
        t = per_layer[-1]
    assert per_layer == [2047, 511, 256, 129, 64]
    assert count_frames(p.model, 10240) == [511, 129, 64, 64]
    assert (p.model.prediction_steps, p.model.negative_samples, p.model.beta) == (10, 10, 0.01)
    assert (p.train.lr, p.train.batch_size, p.train.epochs) == (2e-4, 8, 1000)


def test_vgim_thesis_is_tables_4_1_and_4_2():
    v = get_config("vgim-thesis")
    m1, m2 = v.model.encoder
    assert [(x.type, x.kernel, x.stride, x.padding) for x in m1.layers] == [
        ("conv", 10, 4, 2), ("maxpool", 8, 4, 0), ("conv", 8, 3, 2), ("maxpool", 8, 4, 0)]
    assert (m1.head_kernel, m1.head_padding) == (3, 2)
    assert [(x.type, x.kernel, x.stride, x.padding) for x in m2.layers] == [("conv", 6, 2, 2), ("conv", 6, 2, 2)]
    assert (m2.head_kernel, m2.head_padding) == (3, 1)
    assert v.model.channels == [32] * 4 and v.model.ar_hidden == 0 and v.model.probabilistic
    assert (v.model.prediction_steps, v.model.beta) == (12, 0.0035)
    assert (v.train.lr, v.train.lr_decay, v.train.batch_size, v.train.epochs) == (0.01, 0.995, 171, 800)
    assert _layer_frames(m1, 10240) == [2559, 638, 212, 52]
    # the table's head padding 2 gives 54 frames; the thesis' text (and its code's padding 1) say 52
    assert count_frames(v.model, 10240) == [54, 13]
    with_text_padding = ModelConfig(encoder=[StageConfig(m1.layers, 3, 1), m2], ar_hidden=0)
    assert count_frames(with_text_padding, 10240) == [52, 13]


def test_vgim_thesis_relu_after_every_conv_but_the_heads():
    model = build_model(_shrunk("vgim-thesis"))
    body = [type(x).__name__ for x in model.stages[0].body]
    assert body == ["Conv1d", "ReLU", "MaxPool1d", "Conv1d", "ReLU", "MaxPool1d"]
    assert [type(x).__name__ for x in model.stages[1].body] == ["Conv1d", "ReLU", "Conv1d", "ReLU"]
    assert model.stages[0].mu_head.kernel_size == (3,) and model.stages[0].mu_head.padding == (2,)
    out = model.eval().encode(torch.randn(2, 10240))[0]
    assert (out.mu < 0).any()  # no ReLU after the heads


def test_thesis_gim_keeps_the_reparameterisation():
    g, v = get_config("vgim-thesis-gim"), get_config("vgim-thesis")
    assert g.model.beta == 0 and g.model.probabilistic
    assert g.model.encoder == v.model.encoder and g.train == v.train


def test_cpc_taps_at_module_equivalent_layers():
    c = get_config("cpc")
    assert c.model.end_to_end and not c.model.probabilistic and c.model.beta == 0
    assert c.model.encoder == get_config("sim-paper").model.encoder
    assert stage_layer_names(c.model) == ["conv2", "conv4", "conv5", "gru"]
    model = GreedyModel(_shrunk("cpc").model)
    assert list(model.losses) == ["3"] and model.training_units() == [[0, 1, 2, 3]]
    assert len(model.encode(torch.randn(1, 2560))) == 4


@pytest.mark.parametrize("name, names", [
    ("sim-paper", ["conv2", "conv4", "conv5", "gru"]), ("gim", ["conv2", "conv4", "conv5", "gru"]),
    ("vgim-thesis", ["conv2", "conv4"]), ("tiny", ["conv2", "conv5", "gru"]),
    ("supervised", ["conv2", "conv4", "conv5", "gru"])])
def test_stage_layer_names(name, names):
    assert stage_layer_names(get_config(name).model) == names


def test_kl_reduction_of_the_named_configs():
    assert get_config("sim-paper").model.kl_reduction == "time"
    assert get_config("vgim-thesis").model.kl_reduction == "time"
    assert get_config("tiny").model.kl_reduction == "dims"  # its beta was chosen with "dims"
    assert ModelConfig().kl_reduction == "dims"
    assert inspect.signature(smooth_infonce).parameters["kl_reduction"].default == "dims"


# -- the flat format of earlier runs ----------------------------------------------------------------
# RUN_DIR/config.yaml as `sim train` wrote it before the layer-list format (commit 8874b8b), for
# tiny with model.channels=[8]*5, model.ar_hidden=6, model.maxpool=[2,0].
OLD_CONFIG_YAML = """\
name: tiny
model:
  kernel_sizes: [10, 8, 4, 4, 4]
  strides: [5, 4, 2, 2, 2]
  paddings: [3, 2, 1, 1, 1]
  channels: [8, 8, 8, 8, 8]
  modules: [[0, 1], [2, 3, 4]]
  maxpool: [2, 0]
  probabilistic: true
  ar_hidden: 6
  end_to_end: false
  prediction_steps: 10
  negative_samples: 10
  beta: 0.001
  sampler: gim
  kl_reduction: dims
  reduction: mean
  subsample_window: null
  logvar_bias_init: -4.0
  independent_context_sample: false
  loss_backend: auto
train: {lr: 0.002, lr_decay: 1.0, batch_size: 8, epochs: 8, mode: parallel, seed: 0, checkpoint_every: 100,
  log_every: 5, max_steps: null, num_threads: 0}
data: {sample_rate: 16000, length: 10240}
"""
# What the code of commit 8874b8b built from it (state-dict shapes; seed-0 weights' sum; the z sums of
# a fixed input in eval mode): the same model must come out.
OLD_SHAPES = {
    "stages.0.body.0.weight": (8, 1, 10), "stages.0.body.0.bias": (8,), "stages.0.body.2.weight": (8, 8, 8),
    "stages.0.body.2.bias": (8,), "stages.0.mu_head.weight": (8, 8, 1), "stages.0.mu_head.bias": (8,),
    "stages.0.logvar_head.weight": (8, 8, 1), "stages.0.logvar_head.bias": (8,), "stages.1.body.0.weight": (8, 8, 4),
    "stages.1.body.0.bias": (8,), "stages.1.body.2.weight": (8, 8, 4), "stages.1.body.2.bias": (8,),
    "stages.1.body.4.weight": (8, 8, 4), "stages.1.body.4.bias": (8,), "stages.1.mu_head.weight": (8, 8, 1),
    "stages.1.mu_head.bias": (8,), "stages.1.logvar_head.weight": (8, 8, 1), "stages.1.logvar_head.bias": (8,),
    "stages.2.gru.weight_ih_l0": (18, 8), "stages.2.gru.weight_hh_l0": (18, 6), "stages.2.gru.bias_ih_l0": (18,),
    "stages.2.gru.bias_hh_l0": (18,), "losses.0.weight": (10, 8, 8), "losses.1.weight": (10, 8, 8),
    "losses.2.weight": (10, 8, 6)}
OLD_PARAM_SUM = -77.92241795013251
OLD_Z_SUMS = [102.31898124748841, -14.97847997955978, -5.67818440287374]


def test_old_flat_config_builds_the_same_model(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(OLD_CONFIG_YAML)
    cfg = load_config(path)
    assert cfg.model.paddings == [3, 2, 1, 1, 1] and cfg.model.maxpool == [2, 0]
    assert [x.type for x in cfg.model.encoder[0].layers] == ["conv", "conv", "maxpool"]
    assert count_frames(cfg.model, 10240) == [256, 32, 32]
    torch.manual_seed(0)
    model = GreedyModel(cfg.model).eval()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == OLD_SHAPES
    with torch.no_grad():
        total = sum(float(p.double().sum()) for p in model.parameters())
        x = torch.sin(torch.linspace(0, 300, 10240)).reshape(1, -1)
        z_sums = [float(o.z.double().sum()) for o in model.encode(x)]
    torch.testing.assert_close(total, OLD_PARAM_SUM, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(z_sums, OLD_Z_SUMS, rtol=1e-5, atol=1e-4)
    # saved again, it is written in the layer-list format and reads back equal
    back = load_config(save_config(cfg, tmp_path / "again.yaml"))
    assert back == cfg and "encoder:" in (tmp_path / "again.yaml").read_text()
    assert "kernel_sizes" not in (tmp_path / "again.yaml").read_text()


def test_flat_keys_of_an_old_model_section_take_the_old_defaults():
    m = ModelConfig(**upgrade_model_section({"channels": [8] * 5, "modules": [[0, 1], [2, 3, 4]], "maxpool": [0, 0]}))
    assert m.paddings == [3, 2, 1, 1, 1] and m.kernel_sizes == [10, 8, 4, 4, 4] and m.modules == [[0, 1], [2, 3, 4]]
    m2 = ModelConfig(**upgrade_model_section({**get_config("vgim-thesis").model.__dict__, "channels": [4] * 4}))
    assert m2.channels == [4] * 4 and m2.encoder[0].head_padding == 2
    with pytest.raises(TypeError):  # the constructor takes the layer-list format only: files are converted on read
        ModelConfig(channels=[8] * 5)


def test_flat_overrides_on_the_layer_list():
    cfg = apply_overrides(get_config("vgim-thesis"), ["model.channels=[8,8,8,8]", "model.paddings=[1,1,1,1]"])
    assert cfg.model.channels == [8] * 4 and cfg.model.paddings == [1] * 4
    assert [x.type for x in cfg.model.encoder[0].layers] == ["conv", "maxpool", "conv", "maxpool"]
    with pytest.raises(ValueError, match="one entry per conv layer"):
        apply_overrides(get_config("vgim-thesis"), ["model.channels=[8,8]"])
    with pytest.raises(ValueError, match="no flat form"):
        apply_overrides(get_config("vgim-thesis"), ["model.modules=[[0],[1,2,3]]"])
    recut = apply_overrides(get_config("tiny"), ["model.modules=[[0,1,2,3,4]]", "model.maxpool=[0]"])
    assert recut.model.modules == [[0, 1, 2, 3, 4]] and len(recut.model.encoder) == 1


@pytest.mark.parametrize("bad, exc, msg", [
    ({"type": "avgpool", "kernel": 2, "stride": 2}, ValueError, "layer type"),
    ({"type": "conv", "kernel": 3, "stride": 1}, ValueError, "needs channels"),
    ({"type": "maxpool", "kernel": 2, "stride": 2, "channels": 4}, ValueError, "channels must be None"),
    ({"type": "conv", "kernel": 0, "stride": 1, "channels": 4}, ValueError, "kernel must be >= 1"),
    ({"type": "conv", "kernel": 2.5, "stride": 1, "channels": 4}, TypeError, "kernel must be an int"),
    ({"type": "conv", "kernel": 3, "stride": 1, "channels": 4, "dilation": 2}, ValueError, "unknown keys"),
])
def test_bad_layers_name_the_field(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        ModelConfig(encoder=[{"layers": [bad]}])


def test_encoder_in_yaml_round_trip_and_a_custom_model(tmp_path):
    enc = [{"layers": [{"type": "conv", "kernel": 4, "stride": 2, "padding": 1, "channels": 6},
                       {"type": "maxpool", "kernel": 3, "stride": 2, "padding": 1}], "head_kernel": 3, "head_padding": 1}]
    cfg = Config("custom", ModelConfig(encoder=enc, ar_hidden=0, prediction_steps=2))
    assert isinstance(cfg.model.encoder[0].layers[1], LayerConfig)
    back = load_config(save_config(cfg, tmp_path / "c.yaml"))
    assert back == cfg
    model = build_model(back).eval()
    assert model.encode(torch.randn(1, 400))[0].z.shape == (1, count_frames(back.model, 400)[0], 6)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path, suffix):
    cfg = apply_overrides(get_config("vgim-thesis"), ["train.lr=0.5", "model.subsample_window=20"])
    path = save_config(cfg, tmp_path / f"c{suffix}")
    back = load_config(path)
    assert back == cfg
    assert get_config(str(path)) == cfg


def test_overrides_parse_yaml_values():
    cfg = apply_overrides(get_config("tiny"), ["model.beta=0", "model.probabilistic=false", "train.mode=sequential",
                                               "model.channels=[8,8,8,8,8]", "train.lr=2e-4", "model.loss_backend=reference"])
    assert cfg.model.beta == 0 and cfg.model.probabilistic is False and cfg.train.mode == "sequential"
    assert cfg.model.channels == [8] * 5
    assert cfg.train.lr == 2e-4 and cfg.model.loss_backend == "reference"
    assert get_config("tiny").model.channels == [48] * 5  # named configs are fresh copies


@pytest.mark.parametrize("bad, msg", [
    ("model.nope=1", "no key 'nope'"),
    ("beta=1", "model.<key>"),
    ("model.beta", "key=value"),
    ("train.mode=sideways", "train.mode"),
    ("model.objective=clustering", "model.objective"),
    ("model.objective=supervised", "end_to_end"),
    ("model.beta=0.1", None),  # fine on tiny (probabilistic)
])
def test_bad_overrides(bad, msg):
    if msg is None:
        apply_overrides(get_config("tiny"), [bad])
        return
    with pytest.raises(ValueError, match=msg.replace(".", r"\.").replace("<", ".").replace(">", ".")):
        apply_overrides(get_config("tiny"), [bad])


def test_beta_needs_probabilistic():
    with pytest.raises(ValueError, match="probabilistic"):
        apply_overrides(get_config("gim"), ["model.beta=0.01"])


def test_unknown_sections_and_names(tmp_path):
    with pytest.raises(ValueError, match="unknown keys"):
        Config.from_dict({"model": {"foo": 1}})
    with pytest.raises(ValueError, match="must be one of"):
        get_config("nonexistent")
