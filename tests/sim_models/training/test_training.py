"""A few steps of every named config decrease its losses; gradients stay inside their module."""
import pytest
import torch

from sim_models.model.greedy import GreedyModel
from sim_models.config import PRESETS, get_config
from sim_models.model.greedy import build_model

# Tiny inputs per config: the shortest audio that leaves every module more than K frames.
LENGTH = {"sim-paper": 2560, "gim": 2560, "gim-loewe": 2560, "cpc": 2560, "tiny": 2560, "sim-small": 2560,
          "vgim-thesis": 10240, "vgim-thesis-gim": 10240}
STEPS = {"sim-paper": 3, "gim": 3, "gim-loewe": 3, "cpc": 3, "tiny": 8, "sim-small": 8, "vgim-thesis": 8,
         "vgim-thesis-gim": 8}  # 512 channels: slow
SELF_SUPERVISED = [n for n in PRESETS if get_config(n).model.objective == "infonce"]


def _tones(batch, length, seed=1):
    """Predictable audio (white noise is not: on it only the KL term can fall): a gliding tone per row."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 16000
    f0 = 200 + 800 * torch.rand(batch, 1, generator=g)
    phase = 2 * torch.pi * (f0 * t + 2000 * t**2)
    return 0.5 * torch.sin(phase) + 0.01 * torch.randn(batch, length, generator=g)


def _losses(model, audio, seed):
    g = torch.Generator().manual_seed(seed)  # same noise and negatives before and after training
    with torch.no_grad():
        return [r.loss.item() for r in model.losses_for(audio, list(range(model.num_stages)), g)]


def test_every_self_supervised_config_is_covered():
    assert set(SELF_SUPERVISED) == set(LENGTH)


@pytest.mark.parametrize("name", SELF_SUPERVISED)
def test_few_steps_decrease_every_loss(name):
    cfg = get_config(name)
    model = build_model(cfg)
    audio = _tones(2, LENGTH[name])
    units = model.training_units()
    opts = [torch.optim.Adam(model.unit_parameters(u), lr=cfg.train.lr) for u in units]
    before = _losses(model, audio, 123)
    g = torch.Generator().manual_seed(7)
    for _ in range(STEPS[name]):
        results = model.losses_for(audio, list(range(model.num_stages)), g)
        for o in opts:
            o.zero_grad()
        sum(r.loss for r in results).backward()
        for o in opts:
            o.step()
    after = _losses(model, audio, 123)
    assert len(before) == (1 if cfg.model.end_to_end else model.num_stages)
    for m, (b, a) in enumerate(zip(before, after)):
        assert a < b, f"{name}: loss of module {m} went from {b:.4f} to {a:.4f}"


def _small(name):
    cfg = get_config(name)
    n = len(cfg.model.channels)
    cfg.model.channels = [8] * n
    if cfg.model.ar_hidden:
        cfg.model.ar_hidden = 6
    return cfg


@pytest.mark.parametrize("name", ["sim-paper", "gim", "vgim-thesis", "vgim-thesis-gim", "tiny"])
def test_no_gradient_reaches_an_earlier_module(name):
    cfg = _small(name)
    model = GreedyModel(cfg.model)
    audio = torch.randn(2, LENGTH[name])
    for m in range(model.num_stages):
        model.zero_grad(set_to_none=True)
        results = model.losses_for(audio, list(range(model.num_stages)), torch.Generator().manual_seed(0))
        loss_m = next(r.loss for r in results if r.index == m)
        loss_m.backward()
        own = {id(p) for p in model.unit_parameters([m])}
        for name_p, p in model.named_parameters():
            if id(p) in own:
                continue
            assert p.grad is None, f"loss of module {m} reached {name_p}"
        got = [p for p in model.unit_parameters([m]) if p.grad is not None and p.grad.abs().sum() > 0]
        assert got, f"loss of module {m} did not reach its own parameters"


def test_parallel_sum_gives_each_module_its_own_gradient():
    cfg = _small("sim-paper")
    model = GreedyModel(cfg.model)
    audio = torch.randn(2, 2560)
    stages = list(range(model.num_stages))
    sum(r.loss for r in model.losses_for(audio, stages, torch.Generator().manual_seed(0))).backward()
    together = {n: p.grad.clone() for n, p in model.named_parameters()}
    for m in stages:
        model.zero_grad(set_to_none=True)
        r = model.losses_for(audio, stages, torch.Generator().manual_seed(0))[m]
        r.loss.backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                torch.testing.assert_close(p.grad, together[n], msg=lambda s: f"{n}: {s}")


def test_cpc_end_to_end_does_reach_the_encoder():
    """The control: without gradient isolation, the GRU's loss trains the conv layers."""
    cfg = _small("cpc")
    model = GreedyModel(cfg.model)
    results = model.losses_for(torch.randn(2, 2560), [0, 1, 2, 3], torch.Generator().manual_seed(0))
    assert [r.index for r in results] == [3]  # the taps conv2, conv4, conv5 have no loss of their own
    results[0].loss.backward()
    for m in range(3):
        assert model.stages[m].body[0].weight.grad.abs().sum() > 0


def test_sequential_frozen_modules_keep_no_graph():
    cfg = _small("sim-paper")
    model = GreedyModel(cfg.model)
    results = model.losses_for(torch.randn(2, 2560), [2], torch.Generator().manual_seed(0))
    assert [r.index for r in results] == [2]
    results[0].loss.backward()
    for m in (0, 1):
        assert all(p.grad is None for p in model.stages[m].parameters())


def test_independent_context_sample():
    cfg = _small("tiny")
    cfg.model.independent_context_sample = True
    model = GreedyModel(cfg.model)
    out = model.encode(torch.randn(2, 2560), torch.Generator().manual_seed(0))[0]
    assert not torch.equal(out.context, out.z)
    cfg.model.independent_context_sample = False
    out = GreedyModel(cfg.model).encode(torch.randn(2, 2560), torch.Generator().manual_seed(0))[0]
    assert out.context is out.z
    model.eval()
    out = model.encode(torch.randn(2, 2560))[0]
    assert out.z is out.mu and out.context is out.mu


def test_sample_uses_the_generator():
    model = GreedyModel(_small("tiny").model)
    x = torch.randn(2, 2560)
    a = model.encode(x, torch.Generator().manual_seed(3))[0].z
    b = model.encode(x, torch.Generator().manual_seed(3))[0].z
    c = model.encode(x, torch.Generator().manual_seed(4))[0].z
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
