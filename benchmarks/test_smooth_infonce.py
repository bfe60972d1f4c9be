"""Smooth-InfoNCE loss benchmarks: provider x mode x shape, plus the GEMM floor of each shape.

Run with ``make bench`` or ``python -m pytest benchmarks -q --benchmark-only``; see benchmarks/README.md.
Every benchmark records in ``extra_info``: shape (id, B, T, C, K, N, sets, index), provider, mode,
the rounds and, for the loss providers, the peak extra memory measured in a fresh process.
"""
from __future__ import annotations

import time

import pytest
import torch

from ._memory_probe import measure
from ._providers import FLOOR, MODES, PROVIDERS, make_floor_step, make_step, unavailable_reason
from ._shapes import FloorOperands, build_floor_operands, build_inputs, shapes


def _timed(fn, *, setup=None) -> float:
    if setup is not None:
        setup()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _describe(benchmark, shape, provider, mode, sim_options, rounds):
    index = [s for s, _ in shapes(sim_options.selection)].index(shape)
    benchmark.group = shape.id
    benchmark.extra_info.update({
        "shape": shape.id, **shape.as_dict(), "sets": list(sim_options.sets_of(shape)), "shape_index": index,
        "provider": provider, "mode": mode, "rounds": rounds, "threads": sim_options.threads,
    })


def _check(provider, mode, loss, x, ref):
    """The timed provider must compute the loss (and grads) of the eager reference on these inputs."""
    ref_loss, ref_grads = ref
    torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-5, msg=lambda m: f"{provider} {mode} loss: {m}")
    if ref_grads is None:
        return
    for name, t, g in zip(("context", "targets", "weight", "mu", "logvar"), x.leaves(), ref_grads):
        assert t.grad is not None, f"{provider} {mode}: no gradient reached {name}"
        torch.testing.assert_close(t.grad, g, rtol=1e-3, atol=1e-4 * float(g.abs().max()) + 1e-12,
                                   msg=lambda m, name=name: f"{provider} {mode} grad of {name}: {m}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_smooth_infonce(benchmark, sim_shape, provider, mode, sim_options, reference_results):
    reason = unavailable_reason(provider)
    if reason:
        pytest.skip(reason)
    x = build_inputs(sim_shape, requires_grad=(mode == "fwd+bwd"))
    step = make_step(provider, mode, x)

    # Warm-up outside the timed region, also sizing the rounds; torch.compile compiles on the
    # first call, so the compiled provider is sized on a second one. Then check the result.
    x.clear_grads()
    t0 = time.perf_counter()
    loss = step()
    seconds = time.perf_counter() - t0
    if provider == "compiled":
        seconds = _timed(step, setup=x.clear_grads)
    if provider == "eager":
        reference_results.store(sim_shape, mode, loss, x)
    elif sim_options.check:
        _check(provider, mode, loss, x, reference_results.get(sim_shape, mode))

    rounds = sim_options.rounds(seconds)
    _describe(benchmark, sim_shape, provider, mode, sim_options, rounds)
    benchmark.pedantic(step, setup=x.clear_grads, rounds=rounds, iterations=1, warmup_rounds=0)

    del x, step, loss
    if sim_options.memory:
        m = measure(sim_shape.id, provider, mode, sim_options.threads)
        benchmark.extra_info.update({k: m[k] for k in ("peak_extra_bytes", "grad_bytes", "baseline_rss_bytes")})
        benchmark.extra_info["memory_method"] = m["method"]


@pytest.mark.parametrize("mode", MODES)
def test_gemm_floor(benchmark, sim_shape, mode, sim_options):
    """P = C_flat @ W_cat^T (fwd), plus grad_context = dP @ W_cat and grad_W = dP^T @ C_flat (fwd+bwd)."""
    ops = build_floor_operands(sim_shape)
    step = make_floor_step(mode, ops)
    step()  # first touch of the output buffers
    seconds = _timed(step)
    rounds = sim_options.rounds(seconds)
    _describe(benchmark, sim_shape, FLOOR, mode, sim_options, rounds)
    flops = FloorOperands.flops(sim_shape, mode)
    benchmark.extra_info["flops"] = flops
    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=0)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["gflops_per_s"] = flops / benchmark.stats.stats.min / 1e9
