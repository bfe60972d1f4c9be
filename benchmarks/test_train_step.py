"""One training step of "sim-paper" (batch 8, 10240 samples) and of "tiny", per loss backend.

``--sim-device=cuda`` runs the step on the GPU (model, audio and the sampling generator there, each
timed region closed by ``torch.cuda.synchronize()``) and adds the Triton backend.

Run with ``pytest benchmarks --benchmark-only`` (outside the default test run). Each case also
times, in the same run, the loss alone (forward + backward of every module's loss on a step's
inputs, saved as fresh leaves) right after a timed step, and stores the median of the per-round
ratios in ``benchmark.extra_info["loss_share"]`` (paired rounds: on a shared machine the load
changes from one second to the next).

Autocast dimension (issue 17, item 2): ``precision`` "fp32" (every case) or "bf16-autocast" (the ``tiny``
config, every backend): the step's forward and losses run under ``torch.autocast(<device type>,
torch.bfloat16)``, the backward and the Adam step outside it, as the trainer does with
``train.autocast=bfloat16`` (sim_models/training/mixed_precision.py). The autocast device type is the step's
device, so the CPU bf16 case runs only with ``--sim-device=cpu``. ``extra_info["autocast"]`` is None or
"bfloat16".
"""
from __future__ import annotations

import contextlib
import statistics
import time

import pytest
import torch

from sim_kernels import _ext
from sim_models.config import apply_overrides, get_config
from sim_models.training.optim_step import optimizer_step
from sim_models.model.greedy import build_model

CONFIGS = {"sim-paper": 8, "tiny": 8}  # name -> batch
BACKENDS = ["reference", "native", "triton"]
PRECISIONS = {"fp32": None, "bf16-autocast": torch.bfloat16}  # id -> autocast dtype (None: no autocast)
AUTOCAST_CONFIGS = ("tiny",)  # configs with a bf16-autocast case
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


def _autocast(audio, dtype):
    """torch.autocast on the audio's device type with ``dtype``, or a no-op for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=audio.device.type, dtype=dtype)


def _step(model, opts, audio, gen, dtype=None):
    with _autocast(audio, dtype):  # the forward and losses only; backward and step outside (the trainer's step)
        results = model.losses_for(audio, list(range(model.num_stages)), gen)
    optimizer_step(opts, results)


def _loss_inputs(model, audio, gen, dtype=None):
    """Each module's loss arguments on this batch, as fresh leaves that require grad (bf16 under autocast)."""
    with torch.no_grad(), _autocast(audio, dtype):
        outs = model.encode(audio, gen)
    args = []
    for key, loss_fn in model.losses.items():
        m, out = int(key), outs[int(key)]
        prev = outs[m - 1].z if m > 0 else None
        tensors = [t for t in model.stages[m].loss_inputs(out, prev) if t is not None]
        args.append((loss_fn, [t.detach().clone().requires_grad_(True) for t in tensors]))
    return args


def _time_loss(args, gen, audio, dtype=None):
    _sync()
    t0 = time.perf_counter()
    for loss_fn, tensors in args:
        with _autocast(audio, dtype):
            loss = loss_fn(*tensors, generator=gen)
        loss.backward()
    _sync()
    return time.perf_counter() - t0


def _loss_share(model, opts, audio, gen, rounds=3, dtype=None):
    """Median over paired rounds of (loss fwd+bwd time) / (step time), measured back to back so that
    both see the same machine load."""
    pairs = []
    for _ in range(rounds):
        args = _loss_inputs(model, audio, gen, dtype)
        _sync()
        t0 = time.perf_counter()
        _step(model, opts, audio, gen, dtype)
        _sync()
        step = time.perf_counter() - t0
        pairs.append((_time_loss(args, gen, audio, dtype), step))
    shares = sorted(loss / step for loss, step in pairs)
    loss_t, step_t = (statistics.median(x) for x in zip(*pairs))
    return statistics.median(shares), loss_t, step_t


CASES = [(name, backend, precision) for name in CONFIGS for backend in BACKENDS for precision in PRECISIONS
         if PRECISIONS[precision] is None or name in AUTOCAST_CONFIGS]


@pytest.mark.parametrize("name, backend, precision", CASES, ids=["-".join(c) for c in CASES])
def test_train_step(benchmark, name, backend, precision, sim_options):
    dtype = PRECISIONS[precision]
    device = _DEVICE["value"] = sim_options.device
    model, opts, audio = _setup(name, backend, device)
    gen = torch.Generator(device=device).manual_seed(0)
    _step(model, opts, audio, gen, dtype)  # warm-up (allocations, first-call dispatch, Triton/cuBLAS set-up)
    _step(model, opts, audio, gen, dtype)
    _sync()

    def synced_step():
        _step(model, opts, audio, gen, dtype)
        _sync()

    benchmark.pedantic(synced_step, rounds=3, iterations=1, warmup_rounds=0)
    share, loss_t, step_t = _loss_share(model, opts, audio, gen, dtype=dtype)
    benchmark.extra_info.update({
        "config": name, "backend": backend, "batch": CONFIGS[name], "samples": LENGTH, "device": device,
        "threads": torch.get_num_threads(), "loss_seconds": loss_t, "paired_step_seconds": step_t,
        "loss_share": share, "autocast": None if dtype is None else str(dtype).removeprefix("torch."),
    })
    row = {"train_step": name, **benchmark.extra_info}
    if benchmark.stats is not None:
        row["step_s"] = {"min": benchmark.stats.stats.min, "median": benchmark.stats.stats.median}
    sim_options.append_jsonl(row)
