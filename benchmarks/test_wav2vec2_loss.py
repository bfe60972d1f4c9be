"""wav2vec 2.0's contrastive loss: Hugging Face's formula (eager and compiled) against the fused op.

    python -m pytest benchmarks/test_wav2vec2_loss.py -q --benchmark-only --benchmark-json=/tmp/w2v.json
    python benchmarks/wav2vec2_report.py /tmp/w2v.json            # ratios; three JSONs: median and spread

Shapes and providers: benchmarks/_wav2vec2.py (``--sim-w2v-shapes=w2v2-small,w2v2-base``). Before timing,
every provider's loss (and both feature gradients in fwd+bwd) is compared with ``hf-eager`` on the same
inputs: a fast wrong kernel fails instead of being timed. Each benchmark records in ``extra_info`` the shape,
provider, mode, rounds and, on the CPU, the peak extra memory of one step in a fresh process
(benchmarks/_memory_probe.py, ``--loss wav2vec2``); on CUDA, torch.cuda.max_memory_allocated around one call.
"""
from __future__ import annotations

import time

import pytest
import torch

from ._memory_probe import measure
from ._wav2vec2 import MODES, W2V_PROVIDERS, W2V_SHAPES, build, make_step, unavailable_reason
from .test_smooth_infonce import _finish, _record, _sync, cuda_peak_extra_bytes

_REFERENCE: dict = {}  # (shape id, device, mode) -> hf-eager's (loss, grads)


def _check(provider, mode, loss, x, key):
    ref_loss, ref_grads = _REFERENCE[key]
    torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-3, msg=lambda m: f"{provider} {mode} loss: {m}")
    if ref_grads is None:
        return
    for name, t, g in zip(("transformer_features", "quantized_features"), x.leaves(), ref_grads):
        assert t.grad is not None, f"{provider} {mode}: no gradient reached {name}"
        torch.testing.assert_close(t.grad, g, rtol=1e-3, atol=1e-4 * float(g.abs().max()) + 1e-12,
                                   msg=lambda m, name=name: f"{provider} {mode} grad of {name}: {m}")


def _reference(shape, device, mode):
    key = (shape.id, device, mode)
    if key not in _REFERENCE:
        x = build(shape, requires_grad=(mode == "fwd+bwd"), device=device)
        loss = make_step("hf-eager", mode, x)()
        grads = [t.grad.detach().clone() for t in x.leaves()] if mode == "fwd+bwd" else None
        _REFERENCE.clear()  # one shape's gradients at a time
        _REFERENCE[key] = (loss, grads)
    return key


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", W2V_PROVIDERS)
def test_wav2vec2_loss(benchmark, w2v_shape, provider, mode, sim_options):
    device = sim_options.device
    reason = unavailable_reason(provider, device)
    if reason:
        pytest.skip(reason)
    shape = W2V_SHAPES[w2v_shape]
    key = _reference(shape, device, mode) if sim_options.check else None
    x = build(shape, requires_grad=(mode == "fwd+bwd"), device=device)
    step = make_step(provider, mode, x)
    x.clear_grads()
    t0 = time.perf_counter()
    loss = step()  # warm-up (torch.compile compiles here)
    _sync(device)
    seconds = time.perf_counter() - t0
    if sim_options.check:
        _check(provider, mode, loss, x, key)
    if provider == "hf-compiled" or device == "cuda":
        x.clear_grads()
        t0 = time.perf_counter()
        step()
        _sync(device)
        seconds = time.perf_counter() - t0
    rounds = sim_options.rounds(seconds)
    benchmark.group = f"wav2vec2-{shape.id}-{device}"
    benchmark.extra_info.update({"loss": "wav2vec2", "shape": shape.id, **shape.as_dict(), "device": device,
                                 "provider": provider, "mode": mode, "rounds": rounds, "threads": sim_options.threads})
    _finish(benchmark, sim_options, device, step, x.clear_grads, rounds)
    if device == "cuda":
        benchmark.extra_info["peak_extra_bytes"] = cuda_peak_extra_bytes(step, x.clear_grads)
        benchmark.extra_info["memory_method"] = "torch.cuda.max_memory_allocated - memory_allocated before the call"
    del x, step, loss
    if device == "cpu" and sim_options.memory:
        m = measure(shape.id, provider, mode, sim_options.threads, loss="wav2vec2")
        benchmark.extra_info.update({k: m[k] for k in ("peak_extra_bytes", "grad_bytes", "baseline_rss_bytes")})
        benchmark.extra_info["memory_method"] = m["method"]
    _record(benchmark, sim_options)
