"""The backend registry (sim_kernels/registry.py): a toy backend in one registration, available_backends,
and the value-and-grad ops of every op family refusing mu without kl_weight with one message."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch.testing import assert_close

import sim_kernels
from sim_kernels import _ext, available_backends, registry, smooth_infonce, smooth_infonce_reference
from sim_kernels.functional import BACKENDS
from sim_kernels.reference import per_anchor_terms

from .inputs import make_inputs

CALLS = []


def _toy_fwd(context, targets, weight, neg_idx, mu, logvar, spec):
    CALLS.append("fwd")
    return per_anchor_terms(context, targets, weight, neg_idx, mu, logvar, spec.t_begin, spec.t_end, spec.common,
                            first_step=spec.first_step)


def _toy_value_and_grad(context, targets, weight, neg_idx, mu, logvar, loss_weight, kl_weight, spec):
    CALLS.append("value_and_grad")
    loss, correct, kl = per_anchor_terms(context, targets, weight, neg_idx, mu, logvar, spec.t_begin, spec.t_end,
                                         spec.common, first_step=spec.first_step)
    value = (loss_weight * loss).sum() + ((kl_weight * kl).sum() if kl is not None else 0)
    return value, loss, correct, kl


@pytest.fixture
def toy():
    """A toy backend above every other one, registered in one call."""
    b = registry.register(registry.Backend("toy", 1000, _toy_fwd, _toy_value_and_grad, kernel_skips_index_check=True))
    CALLS.clear()
    yield b
    registry.unregister("toy")


def _inputs(dtype=torch.float32):
    """context, targets, weight and a shared (B, T, N) neg_idx of tests/sim_kernels/inputs.py's make_inputs."""
    c, z, w, idx, _, _ = make_inputs(2, 9, 4, 3, 3, 5, dtype=dtype, shared=True, with_kl=False, requires_grad=False)
    return c, z, w, idx


def test_toy_backend_is_chosen_by_name_and_by_auto(toy):
    c, z, w, idx = _inputs()
    assert registry.choose("toy", c) is toy
    assert registry.choose("auto", c) is toy  # the highest priority wins
    assert "toy" in BACKENDS and BACKENDS[1] == "toy"
    assert available_backends()[0] == "toy" and available_backends("cpu")[0] == "toy"
    out = smooth_infonce(c, z, w, idx, backend="toy")
    assert CALLS == ["fwd"]
    assert_close(out, smooth_infonce_reference(c, z, w, idx))
    w.requires_grad_()
    smooth_infonce(c, z, w, idx, backend="toy").backward()
    assert CALLS == ["fwd", "value_and_grad"]
    assert sim_kernels.SmoothInfoNCELoss(4, 3, prediction_steps=3, negative_samples=5, backend="toy").backend == "toy"


def test_toy_backend_gone_after_unregister():
    assert "toy" not in BACKENDS
    c, z, w, idx = _inputs()
    with pytest.raises(ValueError, match="backend must be one of"):
        smooth_infonce(c, z, w, idx, backend="toy")


def test_register_refuses_duplicates_and_auto(toy):
    with pytest.raises(ValueError, match="already registered"):
        registry.register(toy)
    with pytest.raises(ValueError, match="reserved"):
        registry.register(registry.Backend("auto", 0, _toy_fwd, _toy_value_and_grad, True))


def test_unsupported_backend_is_skipped_by_auto():
    b = registry.register(registry.Backend("toy", 1000, _toy_fwd, _toy_value_and_grad, True,
                                           supports=lambda dev, dt: dt == torch.float64))
    try:
        c = _inputs()[0]
        assert registry.choose("auto", c) is not b
        assert registry.choose("auto", c.double()) is b
    finally:
        registry.unregister("toy")


def test_available_backends_lists_what_runs_here():
    got = available_backends()
    assert got[-1] == "reference"
    assert ("native" in got) == _ext.available()
    assert ("native" in available_backends("cpu")) == _ext.has_kernel("cpu")
    assert ("native" in available_backends(torch.device("cuda"))) == _ext.has_kernel("cuda")
    assert "triton" not in available_backends("cpu")  # "auto" picks Triton for CUDA tensors only


def test_the_native_kernels_check_their_indices():
    assert registry.get("native").kernel_skips_index_check is False
    assert registry.get("reference").kernel_skips_index_check is True


def _op_args():
    """Arguments of smooth_infonce_value_and_grad up to loss_weight: (K, B, T, N) neg_idx, mu and logvar given."""
    x = make_inputs(2, 9, 4, 3, 3, 5, dtype=torch.float32, requires_grad=False)
    return (*x.op_args(), x.loss_weight)


def _namespaces():
    out = []
    out.append(pytest.param("sim_kernels", marks=pytest.mark.skipif(not _ext.has_kernel("cpu"),
                                                                   reason="needs the native CPU kernel")))
    triton_ok = registry.get("triton").available()
    out.append(pytest.param("sim_kernels_triton", marks=pytest.mark.skipif(not triton_ok, reason="triton is not importable")))
    return out


@pytest.mark.parametrize("ns", _namespaces())
def test_value_and_grad_refuses_mu_without_kl_weight(ns):
    if ns == "sim_kernels_triton":
        from sim_kernels.triton.ops import _interpreted
        if not _interpreted():
            pytest.skip("compiled triton needs CUDA tensors")
    op = getattr(torch.ops, ns).smooth_infonce_value_and_grad
    with pytest.raises(ValueError, match="^kl_weight must be given exactly when mu and logvar are$"):
        op(*_op_args(), None)


def test_readme_backend_table_lists_the_registry():
    """README's "Backends" table names exactly the registered backends."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = text.split("## Backends", 1)[1].split("\n\n", 2)[1]
    listed = {m for m in re.findall(r"^\| `(\w+)`", table, flags=re.M)}
    assert listed == set(registry.names()[1:]), (listed, registry.names())
