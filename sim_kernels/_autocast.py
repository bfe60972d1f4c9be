"""What smooth_infonce and its ops do under torch.autocast.

Autocast must not lower the precision of the loss (every backend accumulates in fp32 or wider, whatever the
input dtype). The rule, the same for every backend and device (CPU and CUDA, fp16 and bf16 autocast):

- inputs keep their dtype: fp32 inputs are computed in fp32, bf16 inputs stay bf16 (and the
  kernels accumulate them in fp32), fp64 stays fp64;
- floating inputs of different dtypes, which autocast produces (bf16 activations with an fp32
  weight), are cast once to the widest of them (torch.promote_types; fp16 with bf16 gives fp32),
  autocast's "promote" policy (as for torch.cat); outside autocast such a mix is a TypeError;
- the kernels run with autocast switched off, so their internal GEMMs are not lowered either;
- the result is float32 (float64 for float64 inputs), as outside autocast; gradients flow back
  through the one cast to each input in its own dtype.

`promote` implements the rule for the functional (sim_kernels/functional.py); `register` installs it
as the Autocast{CPU,CUDA} kernel of an op with the schema of csrc/ops.cpp (the native ops and the
Triton siblings), so a direct call to the op behaves the same. The reference (sim_kernels/reference.py)
computes inside `torch.autocast(..., enabled=False)`.
"""
from __future__ import annotations

import torch

__all__ = ["enabled", "promote", "register", "DATA_ARGS"]

# Positions of the floating data arguments in the op schemas (context, targets, weight, mu, logvar);
# the upstream weights (loss_weight, kl_weight) are in the accumulation dtype already.
DATA_ARGS = (0, 1, 2, 4, 5)
_DEVICES = ("cpu", "cuda")


def enabled(device_type: str) -> bool:
    """True when autocast is on for this device type (cpu, cuda); False for any other device."""
    return device_type in _DEVICES and torch.is_autocast_enabled(device_type)


def widest(tensors) -> torch.dtype | None:
    out = None
    for x in tensors:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            out = x.dtype if out is None else torch.promote_types(out, x.dtype)
    return out


def promote(*tensors):
    """The tensors (None kept) with every floating one cast to the widest floating dtype among them."""
    dt = widest(tensors)
    return tuple(x.to(dt) if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != dt else x
                 for x in tensors)


def register(qualname: str, lib: torch.library.Library) -> None:
    """Install the rule above as the AutocastCPU / AutocastCUDA kernel of the op ``qualname``."""
    ns, name = qualname.split("::")
    op = getattr(getattr(torch.ops, ns), name).default
    for device in _DEVICES:
        key_name = "Autocast" + torch._C._dispatch_key_for_device(device)
        key = getattr(torch._C.DispatchKey, key_name)
        # Every autocast key is excluded inside: the kernels' own GEMMs (at::mm, cuBLAS) run un-lowered.
        excluded = torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU) | torch._C.DispatchKeySet(
            torch._C.DispatchKey.AutocastCUDA)

        def impl(*args, _op=op, _excluded=excluded):
            args = list(args)
            promoted = promote(*(args[i] for i in DATA_ARGS))
            for i, x in zip(DATA_ARGS, promoted):
                args[i] = x
            with torch._C._ExcludeDispatchKeyGuard(_excluded):
                return _op(*args)

        if op.has_kernel_for_dispatch_key(key):
            op.py_kernels.pop(key, None)
        op.py_impl(key)(impl)
        lib.impl(name, lambda _keyset, *args, _impl=impl: _impl(*args), key_name, with_keyset=True)
