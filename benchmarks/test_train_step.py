"""One training step of "sim-paper" (batch 8, 10240 samples) and of "tiny", per loss backend.

``--sim-device=cuda`` runs the step on the GPU (model, audio and the sampling generator there, each
timed region closed by ``torch.cuda.synchronize()``) and adds the Triton backend.

Run with ``pytest benchmarks --benchmark-only`` (outside the default test run). Each case also
times, in the same run, the loss alone (forward + backward of every module's loss on a step's
inputs, saved as fresh leaves) right after a timed step, and stores the median of the per-round
ratios in ``benchmark.extra_info["loss_share"]`` (paired rounds: on a shared machine the load
changes from one second to the next).
"""
from __future__ import annotations

import statistics
import time

import pytest
import torch

from sim_kernels import _ext
from sim_models.config import apply_overrides, get_config
from sim_models.optim_step import optimizer_step
from sim_models.trainer import build_model

CONFIGS = {"sim-paper": 8, "tiny": 8}  # name -> batch
BACKENDS = ["reference", "native", "triton"]
LENGTH = 10240
_DEVICE = {"value": "cpu"}  # set by the sim_options fixture (the --sim-device option)


def _sync():
    if _DEVICE["value"] == "cuda":
        torch.cuda.synchronize()


def _setup(name, backend, device):
    from ._providers import unavailable_reason

    reason = unavailable_reason({"reference": "eager"}.get(backend, backend), device)
    if reason:
        pytest.skip(reason)
    cfg = apply_overrides(get_config(name), [f"model.loss_backend={backend}"])
    model = build_model(cfg).to(device)
    opts = [torch.optim.Adam(model.unit_parameters(u), lr=cfg.train.lr) for u in model.training_units()]
    audio = torch.randn(CONFIGS[name], LENGTH, generator=torch.Generator().manual_seed(0)).to(device)
    return model, opts, audio


def _step(model, opts, audio, gen):
    optimizer_step(opts, model.losses_for(audio, list(range(model.num_stages)), gen))


def _loss_inputs(model, audio, gen):
    """Each module's loss arguments on this batch, as fresh leaves that require grad."""
    with torch.no_grad():
        outs = model.encode(audio, gen)
    args = []
    for key, loss_fn in model.losses.items():
        m, out = int(key), outs[int(key)]
        prev = outs[m - 1].z if m > 0 else None
        tensors = [t for t in model.stages[m].loss_inputs(out, prev) if t is not None]
        args.append((loss_fn, [t.detach().clone().requires_grad_(True) for t in tensors]))
    return args


def _time_loss(args, gen):
    _sync()
    t0 = time.perf_counter()
    for loss_fn, tensors in args:
        loss_fn(*tensors, generator=gen).backward()
    _sync()
    return time.perf_counter() - t0


def _loss_share(model, opts, audio, gen, rounds=3):
    """Median over paired rounds of (loss fwd+bwd time) / (step time), measured back to back so that
    both see the same machine load."""
    pairs = []
    for _ in range(rounds):
        args = _loss_inputs(model, audio, gen)
        _sync()
        t0 = time.perf_counter()
        _step(model, opts, audio, gen)
        _sync()
        step = time.perf_counter() - t0
        pairs.append((_time_loss(args, gen), step))
    shares = sorted(loss / step for loss, step in pairs)
    loss_t, step_t = (statistics.median(x) for x in zip(*pairs))
    return statistics.median(shares), loss_t, step_t


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_train_step(benchmark, name, backend, sim_options):
    device = _DEVICE["value"] = sim_options.device
    model, opts, audio = _setup(name, backend, device)
    gen = torch.Generator(device=device).manual_seed(0)
    _step(model, opts, audio, gen)  # warm-up (allocations, first-call dispatch, Triton/cuBLAS set-up)
    _step(model, opts, audio, gen)
    _sync()

    def synced_step():
        _step(model, opts, audio, gen)
        _sync()

    benchmark.pedantic(synced_step, rounds=3, iterations=1, warmup_rounds=0)
    share, loss_t, step_t = _loss_share(model, opts, audio, gen)
    benchmark.extra_info.update({
        "config": name, "backend": backend, "batch": CONFIGS[name], "samples": LENGTH, "device": device,
        "threads": torch.get_num_threads(), "loss_seconds": loss_t, "paired_step_seconds": step_t,
        "loss_share": share,
    })
    row = {"train_step": name, **benchmark.extra_info}
    if benchmark.stats is not None:
        row["step_s"] = {"min": benchmark.stats.stats.min, "median": benchmark.stats.stats.median}
    sim_options.append_jsonl(row)
