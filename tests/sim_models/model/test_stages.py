"""Stages describe themselves (modules.Stage): layout, frame arithmetic, names, how they feed their loss."""
import pytest
import torch

from sim_models.model.greedy import GreedyModel, build_stages, count_frames, stage_names
from sim_models.config import get_config
from sim_models.model.stages import GRUStage, ConvStage, StageOutput, Stage


def test_every_stage_is_a_stage_with_its_description():
    cfg = get_config("sim-paper").model
    stages = build_stages(cfg)
    assert all(isinstance(st, Stage) for st in stages)
    assert [st.kind for st in stages] == ["conv", "conv", "conv", "GRU"]
    assert [st.conv_input for st in stages] == [True, True, True, False]
    assert [st.layer_name for st in stages] == ["conv2", "conv4", "conv5", "gru"]
    assert stages[-1].target_channels == stages[-2].out_channels  # the GRU scores the previous module's z
    assert stages[0].target_channels == stages[0].out_channels
    assert stages[0].kl_weighted and not stages[-1].kl_weighted  # model.beta weighs the conv stage's KL, not the GRU's


@pytest.mark.parametrize("style,names", [
    ("module", ["module 1 (conv)", "module 2 (conv)", "module 3 (GRU)"]),
    ("number", ["1 (conv)", "2 (conv)", "3 (GRU)"]),
    ("layer", ["conv2", "conv5", "gru"]),
])
def test_stage_names_agree_for_model_and_config(style, names):
    cfg = get_config("tiny").model
    assert stage_names(cfg, style) == names
    assert stage_names(GreedyModel(cfg), style) == names


def test_stage_names_refuses_an_unknown_style():
    with pytest.raises(ValueError, match="style"):
        stage_names(get_config("tiny").model, "short")


def test_count_frames_is_each_stages_out_frames_and_draws_nothing():
    cfg = get_config("tiny").model
    before = torch.random.get_rng_state()
    frames = count_frames(cfg, 2048)
    assert torch.equal(before, torch.random.get_rng_state())
    model = GreedyModel(cfg)
    outs = model.encode(torch.randn(1, 2048))
    assert frames == [o.z.shape[1] for o in outs]


def test_loss_inputs_per_stage_type():
    z = torch.randn(2, 5, 3)
    out = StageOutput(z=z, mu=z, logvar=z, context=z)
    conv = ConvStage(1, get_config("tiny").model.encoder[0])
    assert conv.loss_inputs(out, None) == (z, z, z, z)
    gru = GRUStage(3, 4)
    prev = torch.randn(2, 5, 3)
    assert gru.loss_inputs(out, prev)[1] is prev
    with pytest.raises(ValueError, match="prev_z"):
        gru.loss_inputs(out, None)
