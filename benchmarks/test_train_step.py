"""One training step of "sim-paper" (batch 8, 10240 samples) and of "tiny", per loss backend.

Run with ``pytest benchmarks --benchmark-only`` (outside the default test run). Each case also
times, in the same run, the loss alone (forward + backward of every module's loss on that step's
inputs, saved as fresh leaves) and stores its share of the step in
``benchmark.extra_info["loss_share"]``.
"""
from __future__ import annotations

import statistics
import time

import pytest
import torch

from sim_kernels import _ext
from sim_models.config import apply_overrides, get_config
from sim_models.modules import ARModule
from sim_models.trainer import build_model

CONFIGS = {"sim-paper": 8, "tiny": 8}  # name -> batch
BACKENDS = ["reference", "native"]
LENGTH = 10240


def _setup(name, backend):
    if backend == "native" and not _ext.has_kernel("cpu"):
        pytest.skip("backend 'native' needs the compiled CPU kernel: sim_kernels._ext.has_kernel('cpu') is False "
                    "(build it with `pip install --no-build-isolation -e .`)")
    cfg = apply_overrides(get_config(name), [f"model.loss_backend={backend}"])
    model = build_model(cfg)
    opts = [torch.optim.Adam(model.unit_parameters(u), lr=cfg.train.lr) for u in model.training_units()]
    audio = torch.randn(CONFIGS[name], LENGTH, generator=torch.Generator().manual_seed(0))
    return model, opts, audio


def _step(model, opts, audio, gen):
    results = model.losses_for(audio, list(range(model.num_stages)), gen)
    for o in opts:
        o.zero_grad(set_to_none=True)
    sum(r.loss for r in results).backward()
    for o in opts:
        o.step()


def _loss_inputs(model, audio, gen):
    """Each module's loss arguments on this batch, as fresh leaves that require grad."""
    with torch.no_grad():
        outs = model.encode(audio, gen)
    args = []
    for key, loss_fn in model.losses.items():
        m, out = int(key), outs[int(key)]
        if isinstance(model.stages[m], ARModule):  # GRU module: targets from the previous module
            tensors = (out.context, outs[m - 1].z)
        elif out.mu is not None:
            tensors = (out.context, out.z, out.mu, out.logvar)
        else:
            tensors = (out.context, out.z)
        args.append((loss_fn, [t.detach().clone().requires_grad_(True) for t in tensors]))
    return args


def _time_loss(args, gen, reps=3):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for loss_fn, tensors in args:
            loss_fn(*tensors, generator=gen).backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_train_step(benchmark, name, backend):
    model, opts, audio = _setup(name, backend)
    gen = torch.Generator().manual_seed(0)
    _step(model, opts, audio, gen)  # warm-up (allocations, first-call dispatch)
    benchmark.pedantic(_step, args=(model, opts, audio, gen), rounds=3, iterations=1, warmup_rounds=0)
    step_time = benchmark.stats.stats.median
    loss_time = _time_loss(_loss_inputs(model, audio, gen), gen)
    benchmark.extra_info.update({
        "config": name, "backend": backend, "batch": CONFIGS[name], "samples": LENGTH,
        "threads": torch.get_num_threads(), "loss_seconds": loss_time, "step_seconds": step_time,
        "loss_share": loss_time / step_time,
    })
