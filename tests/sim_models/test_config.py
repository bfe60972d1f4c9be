import pytest

from sim_models.architectures import count_frames
from sim_models.config import CONFIG_NAMES, Config, apply_overrides, get_config, load_config, save_config


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_named_config_frames_exceed_K(name):
    cfg = get_config(name)
    frames = count_frames(cfg.model, cfg.data.length)
    assert min(frames) > cfg.model.prediction_steps, frames


def test_paper_values():
    p = get_config("sim-paper")
    assert (p.model.prediction_steps, p.model.negative_samples, p.model.beta) == (10, 10, 0.01)
    assert p.train.lr == 2e-4 and p.train.batch_size == 8 and len(p.model.modules) == 3 and p.model.ar_hidden == 256
    assert count_frames(p.model, 10240)[-1] == 64
    v = get_config("vgim-thesis")
    assert (v.model.prediction_steps, v.model.beta, v.train.lr, v.train.lr_decay) == (12, 0.0035, 0.01, 0.995)
    assert set(v.model.channels) == {32} and len(v.model.modules) == 2 and all(v.model.maxpool)
    g = get_config("gim")
    assert g.model.beta == 0 and not g.model.probabilistic
    c = get_config("cpc")
    assert c.model.end_to_end and len(c.model.modules) == 1 and c.model.ar_hidden > 0


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
