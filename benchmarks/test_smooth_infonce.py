"""Smooth-InfoNCE loss benchmarks: provider x mode x dtype x shape, plus the GEMM floor of each shape.

Run with ``make bench`` or ``python -m pytest benchmarks -q --benchmark-only``; see benchmarks/README.md.
Every benchmark records in ``extra_info``: shape (id, B, T, C, K, N, sets, index), dtype, device,
provider, mode, the rounds and, for the loss providers, the peak extra memory (CPU: a fresh
process; CUDA: torch.cuda.max_memory_allocated around one call).

On CUDA the rounds are timed with CUDA events (one pair per round, after a warm-up, read after one
synchronisation); pytest-benchmark's own host timer then times the same step with a
``torch.cuda.synchronize()`` at its end, and the event times go to ``extra_info["cuda_event_s"]``,
which benchmarks/report.py prefers.
"""
from __future__ import annotations

import statistics
import time

import pytest
import torch

from ._memory_probe import measure
from ._providers import FLOOR, MODES, PROVIDERS, make_floor_step, make_step, unavailable_reason
from ._shapes import DTYPES, FloorOperands, build_floor_operands, build_inputs, shapes

# Sanity bounds of the result check (the correctness tests hold the strict rules; this catches a
# provider that computes something else). Low precision is compared loosely with the eager
# reference run in the same dtype.
CHECK_TOL = {"float32": (1e-4, 1e-5, 1e-3, 1e-4), "bfloat16": (5e-2, 5e-2, 1e-1, 5e-2),
             "float16": (1e-2, 1e-2, 5e-2, 1e-2)}  # loss rtol, loss atol, grad rtol, grad atol (x max|g|)


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device, *, setup=None) -> float:
    if setup is not None:
        setup()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def cuda_event_times(fn, rounds: int, setup=None) -> list[float]:
    """Seconds per call of ``fn`` from CUDA events, one pair per round (``setup`` runs outside them)."""
    pairs = []
    for _ in range(rounds):
        if setup is not None:
            setup()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        pairs.append((start, end))
    torch.cuda.synchronize()
    return [s.elapsed_time(e) / 1e3 for s, e in pairs]


def _event_stats(times: list[float]) -> dict:
    return {"min": min(times), "median": statistics.median(times), "mean": statistics.fmean(times),
            "rounds": len(times)}


def cuda_peak_extra_bytes(step, setup) -> int:
    """Peak bytes allocated during one call above what was allocated before it (CUDA caching allocator)."""
    setup()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def _describe(benchmark, shape, dtype, provider, mode, sim_options, rounds):
    index = [s for s, _ in shapes(sim_options.selection)].index(shape)
    benchmark.group = f"{shape.id}-{dtype}-{sim_options.device}"
    benchmark.extra_info.update({
        "shape": shape.id, **shape.as_dict(), "sets": list(sim_options.sets_of(shape)), "shape_index": index,
        "dtype": dtype, "device": sim_options.device,
        "provider": provider, "mode": mode, "rounds": rounds, "threads": sim_options.threads,
    })


def _check(provider, mode, dtype, loss, x, ref):
    """The timed provider must compute the loss (and grads) of the eager reference on these inputs."""
    ref_loss, ref_grads = ref
    lr, la, gr, ga = CHECK_TOL[dtype]
    torch.testing.assert_close(loss, ref_loss, rtol=lr, atol=la, msg=lambda m: f"{provider} {mode} loss: {m}")
    if ref_grads is None:
        return
    for name, t, g in zip(("context", "targets", "weight", "mu", "logvar"), x.leaves(), ref_grads):
        assert t.grad is not None, f"{provider} {mode}: no gradient reached {name}"
        torch.testing.assert_close(t.grad.float(), g.float(), rtol=gr, atol=ga * float(g.abs().max()) + 1e-12,
                                   msg=lambda m, name=name: f"{provider} {mode} grad of {name}: {m}")


def _finish(benchmark, sim_options, device, step, setup, rounds):
    """Time ``rounds`` calls: pytest-benchmark's pedantic run (synchronised on CUDA), plus CUDA events."""
    if device == "cuda":
        benchmark.extra_info["cuda_event_s"] = _event_stats(cuda_event_times(step, rounds, setup))

        def synced():
            step()
            torch.cuda.synchronize()

        benchmark.pedantic(synced, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    else:
        benchmark.pedantic(step, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)


def _record(benchmark, sim_options):
    row = dict(benchmark.extra_info)
    if benchmark.stats is not None:
        st = benchmark.stats.stats
        row["host_s"] = {"min": st.min, "median": st.median, "mean": st.mean, "rounds": st.rounds}
    sim_options.append_jsonl(row)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_smooth_infonce(benchmark, sim_shape, sim_dtype, provider, mode, sim_options, reference_results):
    device = sim_options.device
    reason = unavailable_reason(provider, device)
    if reason:
        pytest.skip(reason)
    x = build_inputs(sim_shape, requires_grad=(mode == "fwd+bwd"), dtype=DTYPES[sim_dtype], device=device)
    step = make_step(provider, mode, x)

    # Warm-up outside the timed region, also sizing the rounds; torch.compile compiles on the
    # first call, so the compiled provider is sized on a second one. Then check the result.
    x.clear_grads()
    t0 = time.perf_counter()
    try:
        loss = step()
    except TypeError as e:  # a backend that does not take this dtype on this device says so
        pytest.skip(f"{provider} on {device} does not take {sim_dtype}: {e}")
    _sync(device)
    seconds = time.perf_counter() - t0
    if provider == "compiled" or device == "cuda":  # first CUDA calls load modules and pick GEMM algorithms
        seconds = _timed(step, device, setup=x.clear_grads)
    key = (sim_shape, sim_dtype, device)
    if provider == "eager":
        reference_results.store(key, mode, loss, x)
    elif sim_options.check:
        _check(provider, mode, sim_dtype, loss, x, reference_results.get(key, mode))

    rounds = sim_options.rounds(seconds)
    _describe(benchmark, sim_shape, sim_dtype, provider, mode, sim_options, rounds)
    _finish(benchmark, sim_options, device, step, x.clear_grads, rounds)

    if device == "cuda":
        benchmark.extra_info["peak_extra_bytes"] = cuda_peak_extra_bytes(step, x.clear_grads)
        benchmark.extra_info["grad_bytes"] = sum(t.numel() * t.element_size() for t in x.leaves()) \
            if mode == "fwd+bwd" else 0
        benchmark.extra_info["memory_method"] = "torch.cuda.max_memory_allocated - memory_allocated before the call"
    del x, step, loss
    if device == "cpu" and sim_options.memory:
        if sim_dtype != "float32":
            benchmark.extra_info["memory_method"] = "not measured: the CPU memory probe builds float32 inputs"
        else:
            m = measure(sim_shape.id, provider, mode, sim_options.threads)
            benchmark.extra_info.update({k: m[k] for k in ("peak_extra_bytes", "grad_bytes", "baseline_rss_bytes")})
            benchmark.extra_info["memory_method"] = m["method"]
    _record(benchmark, sim_options)


@pytest.mark.parametrize("mode", MODES)
def test_gemm_floor(benchmark, sim_shape, sim_dtype, mode, sim_options):
    """P = C_flat @ W_cat^T (fwd), plus grad_context = dP @ W_cat and grad_W = dP^T @ C_flat (fwd+bwd)."""
    device = sim_options.device
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("--sim-device=cuda but torch.cuda.is_available() is False")
    ops = build_floor_operands(sim_shape, dtype=DTYPES[sim_dtype], device=device)
    step = make_floor_step(mode, ops)
    step()  # first touch of the output buffers (and, on CUDA, the choice of the cuBLAS algorithms)
    seconds = _timed(step, device)
    rounds = sim_options.rounds(seconds)
    _describe(benchmark, sim_shape, sim_dtype, FLOOR, mode, sim_options, rounds)
    flops = FloorOperands.flops(sim_shape, mode)
    benchmark.extra_info["flops"] = flops
    _finish(benchmark, sim_options, device, step, None, rounds)
    best = benchmark.extra_info.get("cuda_event_s", {}).get("min")
    if best is None and benchmark.stats is not None:  # None under --benchmark-disable
        best = benchmark.stats.stats.min
    if best:
        benchmark.extra_info["gflops_per_s"] = flops / best / 1e9
    _record(benchmark, sim_options)
