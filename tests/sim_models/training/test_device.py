"""train.device: the single-process trainer on "cpu" / "cuda" / "auto"; device-independent checkpoints."""
import pytest
import torch

from sim_models.rundir.checkpoint import load_checkpoint
from sim_models.config import apply_overrides, get_config
from sim_models.rundir.checkpoint import CHECKPOINT_NAME
from sim_models.training.trainer import Trainer
from sim_models.training.strategies.single import resolve_device

_OVR = ["model.channels=[8,8,8,8,8]", "model.ar_hidden=6", "data.length=2560", "train.batch_size=2",
        "train.epochs=1", "train.log_every=1"]


def _data(n=4):
    return list(torch.randn(n, 2560, generator=torch.Generator().manual_seed(1)))


def _cfg(device):
    return apply_overrides(get_config("tiny"), _OVR + [f"train.device={device}"])


def test_unknown_device_is_refused_naming_train_device():
    with pytest.raises(ValueError, match="train.device"):
        _cfg("tpu")
    with pytest.raises(ValueError, match="train.device"):
        resolve_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"train.device='cuda'.*no CUDA device"):
        Trainer(_cfg("cuda"), _data(), tmp_path, progress=False, tensorboard=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks cuda on this machine")
def test_auto_is_cpu_without_a_gpu_and_trains_as_cpu(tmp_path):
    a = Trainer(_cfg("auto"), _data(), tmp_path / "a", progress=False, tensorboard=False)
    b = Trainer(_cfg("cpu"), _data(), tmp_path / "b", progress=False, tensorboard=False)
    assert a.device == b.device == torch.device("cpu")
    a.fit(), b.fit()
    sa, sb = load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME), load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    assert torch.equal(sa["generator"], sb["generator"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (train.device=cuda)")
def test_cuda_trains_saves_a_cpu_checkpoint_and_resumes(tmp_path):
    cfg = _cfg("cuda")
    t = Trainer(cfg, _data(), tmp_path, progress=False, tensorboard=False)
    assert next(t.model.parameters()).is_cuda and t.generator.device.type == "cuda"
    t.fit(epochs=1)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert all(v.device.type == "cpu" for v in state["model"].values())
    r = Trainer(cfg, _data(), tmp_path, progress=False, tensorboard=False)
    summary = r.fit(resume=True, epochs=2)
    assert summary["steps"] == 4 and next(r.model.parameters()).is_cuda
