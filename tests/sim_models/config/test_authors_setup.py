"""The SIM authors' setup as options: linear 1×1 outputs of deterministic modules, eval-time sampling,
sim-small's cut and price per nat (sim_models/model/stages.py, architectures.py, config.py)."""
import pytest
import torch
from torch import nn

from sim_models.model.greedy import GreedyModel, count_frames, stage_names
from sim_models.config import SMALL_BETA, ModelConfig, apply_overrides, get_config
from sim_models.model.stages import ConvStage


def _small(*overrides, channels=8):
    """sim-small at ``channels`` wide (the cut, heads and options kept)."""
    return apply_overrides(get_config("sim-small"), [f"model.channels={[channels] * 5}", *overrides]).model


def test_linear_head_is_a_1x1_conv_without_activation():
    spec = get_config("gim").model.encoder[0]
    relu = ConvStage(1, spec, probabilistic=False, deterministic_head="relu")
    lin = ConvStage(1, spec, probabilistic=False, deterministic_head="linear")
    lin.body.load_state_dict(relu.body.state_dict())
    x = torch.randn(2, 1, 4000)
    h = relu(x).z                                          # ReLU output: never negative
    assert (h >= 0).all() and not hasattr(relu, "out_head")
    assert isinstance(lin.out_head, nn.Conv1d) and lin.out_head.kernel_size == (1,)
    expected = lin.out_head(h.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(lin(x).z, expected)
    assert (lin(x).z < 0).any()                            # a linear output has no sign constraint
    assert lin.out_frames(4000) == h.shape[1]


def test_named_baselines_use_the_authors_linear_head_and_loewe_keeps_relu():
    assert get_config("gim").model.deterministic_head == "linear"
    assert get_config("cpc").model.deterministic_head == "linear"
    assert get_config("gim-loewe").model.deterministic_head == "relu"
    model = GreedyModel(get_config("cpc").model)
    assert all(hasattr(st, "out_head") for st in model.stages[:3])  # linear layers at every module boundary


def test_deterministic_head_is_validated_and_ignored_when_probabilistic():
    with pytest.raises(ValueError, match="deterministic_head"):
        ModelConfig(deterministic_head="tanh")
    st = ConvStage(1, get_config("sim-small").model.encoder[0], probabilistic=True, deterministic_head="linear")
    assert not hasattr(st, "out_head") and hasattr(st, "mu_head")


def test_eval_time_sampling_changes_z_and_is_reproducible():
    model = GreedyModel(_small()).eval()
    x = torch.randn(2, 10240)
    mean = model.encode(x)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    s1, s2 = model.encode(x, g1, sample=True), model.encode(x, g2, sample=True)
    torch.testing.assert_close(s1[0].mu, mean[0].mu)      # module 1 sees the same audio either way
    for a, b, m in zip(s1[:3], s2[:3], mean[:3]):
        torch.testing.assert_close(a.z, b.z)               # one generator seed -> one sample
        assert not torch.allclose(a.z, m.z)                # a sample, not the mean
        torch.testing.assert_close(m.z, m.mu)              # eval without sample: z is mu
    # the sample of module 1 feeds module 2: its mu differs from the mean path's
    assert not torch.allclose(s1[1].mu, mean[1].mu)


def test_sampling_with_a_collapsed_variance_gives_the_mean():
    model = GreedyModel(_small()).eval()
    for st in model.stages[:3]:
        nn.init.constant_(st.logvar_head.bias, -60.0)       # sigma = e^-30
        nn.init.zeros_(st.logvar_head.weight)
    x = torch.randn(2, 10240)
    for a, m in zip(model.encode(x, torch.Generator().manual_seed(0), sample=True), model.encode(x)):
        torch.testing.assert_close(a.z, m.z)


def test_sim_small_is_the_papers_cut_at_48_channels():
    cfg = get_config("sim-small")
    paper = get_config("sim-paper")
    assert [len(m.convs()) for m in cfg.model.encoder] == [2, 2, 1]
    assert cfg.model.kernel_sizes == paper.model.kernel_sizes and cfg.model.strides == paper.model.strides
    assert cfg.model.paddings == paper.model.paddings and set(cfg.model.channels) == {48}
    assert stage_names(cfg.model, "layer") == ["conv2", "conv4", "conv5", "gru"]  # module m is the paper's g_enc^m
    assert count_frames(cfg.model, 10240) == count_frames(paper.model, 10240) == [511, 129, 64, 64]
    assert cfg.model.probabilistic and cfg.model.logvar_bias_init is None          # units start at the prior
    assert cfg.model.kl_reduction == "time" and cfg.model.independent_context_sample
    assert cfg.model.subsample_window == 128 and cfg.train.lr == 2e-4
    # the paper's price per nat in module 1 (beta * T / C under "time"): 0.01 * 511 / 512 at 512 channels
    assert SMALL_BETA * 511 / 48 == pytest.approx(0.01 * 511 / 512)


def test_sim_paper_takes_two_samples_and_the_window_as_the_authors_code():
    m = get_config("sim-paper").model
    assert m.independent_context_sample and m.subsample_window == 128 and m.logvar_bias_init is None
