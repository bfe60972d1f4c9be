"""train.autocast: the option validates, a bf16 autocast run on the CPU trains, runs its
forward in bf16 and its backward / optimiser step on fp32 parameters, starts at the fp32 run's loss,
round-trips through config files and checkpoints and resumes exactly; float16 needs CUDA (and a GradScaler).
Module parallel under bf16 (z sent in bf16) and its float16 refusal: test_distributed.py."""
import math
import types

import pytest
import torch

from sim_models.rundir.checkpoint import load_checkpoint
from sim_models.config import TrainConfig, apply_overrides, get_config, load_config, save_config
from sim_models.data.datasets import TensorAudioDataset
from sim_models.training.mixed_precision import MixedPrecision
from sim_models.training.optim_step import optimizer_step
from sim_models.rundir.logs import read_metrics
from sim_models.rundir.checkpoint import CHECKPOINT_NAME
from sim_models.training.trainer import Trainer

from tests.sim_models.training.test_resume import _assert_same_state, _cfg, _data

# First-step loss, bf16 autocast against fp32, same seed, same data and (modules._normal) the same draws.
# Measured (2026-11-30, this 2-core Xeon, torch 2.14): |relative difference| per module 2.7e-5, 1.4e-6, 1.1e-5
# on the shrunk tiny config below (8 channels, 2560 samples, batch 3) and 1.9e-7, 5.8e-7, 1.9e-6 on the full
# `tiny` (48 channels, 10240 samples, batch 8). Far below bf16's 2^-8 = 3.9e-3 per rounding: the loss is
# accumulated in fp32 and, at initialisation, sits near chance (log 11) where it barely moves with the
# scores. 1e-3 leaves a margin of ~40x for other CPUs' bf16 kernels while still failing on a real fault.
FIRST_STEP_RTOL = 1e-3


def _run(tmp_path, name, *extra, val=None):
    t = Trainer(_cfg("parallel", "train.log_every=1", *extra), _data(), tmp_path / name, progress=False,
                tensorboard=False, val_dataset=val)
    return t, t.fit()


def _val():
    return TensorAudioDataset(torch.randn(4, 2560, generator=torch.Generator().manual_seed(1)))


# -- the option --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [(None, None), ("bfloat16", "bfloat16"), ("float16", "float16"),
                                             ("none", None), ("null", None)])
def test_option_accepts(value, expected):
    assert TrainConfig(autocast=value).autocast == expected


@pytest.mark.parametrize("value", ["bf16", "fp16", "float32", "BFloat16", 16, True])
def test_option_refuses_other_values_naming_the_field(value):
    with pytest.raises(ValueError, match=r"train\.autocast must be None .*'bfloat16', 'float16'"):
        TrainConfig(autocast=value)


def test_option_from_the_command_line_overrides():
    assert get_config("tiny").train.autocast is None
    assert apply_overrides(get_config("tiny"), ["train.autocast=bfloat16"]).train.autocast == "bfloat16"
    assert apply_overrides(get_config("tiny"), ["train.autocast=bfloat16", "train.autocast=none"]).train.autocast is None
    with pytest.raises(ValueError, match=r"train\.autocast"):
        apply_overrides(get_config("tiny"), ["train.autocast=bf16"])


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_round_trips(tmp_path, suffix):
    cfg = apply_overrides(get_config("tiny"), ["train.autocast=bfloat16"])
    back = load_config(save_config(cfg, tmp_path / f"c{suffix}"))
    assert back.train.autocast == "bfloat16" and back == cfg


def test_float16_on_the_cpu_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"train\.autocast='float16' needs a CUDA device.*bfloat16"):
        Trainer(_cfg("parallel", "train.autocast=float16", "train.device=cpu"), _data(), tmp_path, progress=False,
                tensorboard=False)


# -- a bf16 run on the CPU ---------------------------------------------------------------------------
def test_bf16_run_trains_and_starts_at_the_fp32_loss(tmp_path):
    _run(tmp_path, "fp32", "train.max_steps=4")
    _, summary = _run(tmp_path, "bf16", "train.max_steps=4", "train.autocast=bfloat16", val=_val())
    assert summary["steps"] == 4
    fp32, bf16 = read_metrics(tmp_path / "fp32"), read_metrics(tmp_path / "bf16")
    assert [(r["step"], r["module"]) for r in bf16] == [(r["step"], r["module"]) for r in fp32]
    assert all(math.isfinite(r[k]) for r in bf16 for k in ("loss", "nce", "kl", "accuracy"))
    first = lambda rows: torch.tensor([r["loss"] for r in rows if r["step"] == 1], dtype=torch.float64)
    torch.testing.assert_close(first(bf16), first(fp32), rtol=FIRST_STEP_RTOL, atol=0)
    assert not torch.equal(first(bf16), first(fp32))  # the forward really ran in another precision
    # recorded in the run's config and checkpoint, as every other field
    assert load_config(tmp_path / "bf16" / "config.yaml").train.autocast == "bfloat16"
    assert load_checkpoint(tmp_path / "bf16" / CHECKPOINT_NAME)["config"]["train"]["autocast"] == "bfloat16"


def test_bf16_forward_fp32_parameters_and_loss(tmp_path):
    """A forward hook sees bf16 conv and GRU outputs during a step and during validation; the losses are fp32
    (the loss keeps its fp32 weight), the parameters, their gradients and Adam's state stay fp32."""
    t = Trainer(_cfg("parallel", "train.autocast=bfloat16"), _data(), tmp_path, progress=False, tensorboard=False,
                val_dataset=_val())
    seen = []
    conv = t.model.stages[0].body[0]
    hooks = [conv.register_forward_hook(lambda m, i, o: seen.append(("conv", o.dtype))),
             t.model.stages[-1].gru.register_forward_hook(lambda m, i, o: seen.append(("gru", o[0].dtype)))]
    results = t._step(t._collate(t._batches(0, 0)[0]), [0, 1, 2], [0, 1, 2])
    assert seen == [("conv", torch.bfloat16), ("gru", torch.bfloat16)]
    assert all(r.loss.dtype == torch.float32 and torch.isfinite(r.loss) for r in results)
    assert not torch.is_autocast_enabled("cpu")  # the step leaves autocast switched off
    for p in t.model.parameters():
        assert p.dtype == torch.float32 and (p.grad is None or p.grad.dtype == torch.float32)
    assert all(s["exp_avg"].dtype == torch.float32 for o in t.optimizers for s in o.state.values())
    seen.clear()
    rows = t._validation_rows([0, 1, 2], 0, 0)
    assert ("conv", torch.bfloat16) in seen and all(d == torch.bfloat16 for _, d in seen)
    assert len(rows) == 3 and all(math.isfinite(r["loss"]) for r in rows)
    for h in hooks:
        h.remove()


def test_fp32_run_runs_no_autocast(tmp_path):
    t = Trainer(_cfg("parallel"), _data(), tmp_path, progress=False, tensorboard=False)
    seen = []
    t.model.stages[0].body[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    t._step(t._collate(t._batches(0, 0)[0]), [0, 1, 2], [0, 1, 2])
    assert seen == [torch.float32] and t.precision.scaler is None
    assert "grad_scaler" not in t.process_state_dict()  # checkpoints unchanged without float16


@pytest.mark.parametrize("mode, stop_at", [("parallel", 4), ("sequential", 8)])
def test_bf16_resume_matches_uninterrupted_run(tmp_path, mode, stop_at):
    full = Trainer(_cfg(mode, "train.autocast=bfloat16"), _data(), tmp_path / "full", progress=False, tensorboard=False)
    full.fit()
    part = Trainer(_cfg(mode, "train.autocast=bfloat16", f"train.max_steps={stop_at}"), _data(), tmp_path / "part",
                   progress=False, tensorboard=False)
    part.fit()
    resumed = Trainer(_cfg(mode, "train.autocast=bfloat16"), _data(), tmp_path / "part", progress=False,
                      tensorboard=False)
    resumed.fit(resume=True)
    _assert_same_state(load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME),
                       load_checkpoint(tmp_path / "part" / CHECKPOINT_NAME))


def test_noise_draws_do_not_depend_on_the_autocast_dtype():
    """modules._normal draws fp32 noise and casts it: a bf16 forward consumes the generator as fp32 does."""
    from sim_models.model.stages import _normal
    like32, like16 = torch.zeros(3, 5), torch.zeros(3, 5, dtype=torch.bfloat16)
    g32, g16 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = _normal(like32, g32), _normal(like16, g16)
    assert b.dtype == torch.bfloat16 and torch.equal(a.to(torch.bfloat16), b)
    assert torch.equal(g32.get_state(), g16.get_state())


# -- float16: the GradScaler path -------------------------------------------------------------------
def test_optimizer_step_with_a_grad_scaler():
    """optimizer_step(..., scaler): the gradients the optimiser sees are unscaled (same step as without a
    scaler), and a step with inf gradients is skipped and halves the scale. (CPU GradScaler: the code path
    float16 autocast takes on CUDA.)"""
    def setup():
        torch.manual_seed(0)
        lin = torch.nn.Linear(4, 1)
        return lin, torch.optim.SGD(lin.parameters(), lr=0.1)

    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    result = lambda lin, scale=1.0: [types.SimpleNamespace(loss=lin(x).pow(2).mean() * scale)]
    plain, opt = setup()
    optimizer_step([opt], result(plain))
    scaled, opt_s = setup()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    optimizer_step([opt_s], result(scaled), scaler=scaler)
    for p, q in zip(plain.parameters(), scaled.parameters()):
        torch.testing.assert_close(q, p)
    before = [p.detach().clone() for p in scaled.parameters()]
    optimizer_step([opt_s], result(scaled, float("inf")), scaler=scaler)
    assert all(torch.equal(p, b) for p, b in zip(scaled.parameters(), before)) and scaler.get_scale() == 512.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 autocast trains on CUDA only")
def test_float16_cuda_run_trains_and_checkpoints_its_scale(tmp_path):
    t, summary = _run(tmp_path, "fp16", "train.max_steps=3", "train.autocast=float16", "train.device=cuda")
    assert summary["steps"] == 3 and t.precision.scaler is not None
    assert all(math.isfinite(r["loss"]) for r in read_metrics(tmp_path / "fp16"))
    assert load_checkpoint(tmp_path / "fp16" / CHECKPOINT_NAME)["grad_scaler"]["scale"] > 0


def test_mixed_precision_helper():
    assert MixedPrecision(None, "cpu").scaler is None and not MixedPrecision(None, "cpu").enabled
    mp = MixedPrecision("bfloat16", "cpu")
    assert mp.enabled and mp.scaler is None and mp.state_dict() == {}
    with mp.autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with pytest.raises(ValueError, match=r"train\.autocast"):
        MixedPrecision("fp16", "cpu")
