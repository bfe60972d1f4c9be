"""Fuzz campaign over the public functional and the module (hypothesis).

Valid inputs must match the reference; invalid ones must raise ValueError/TypeError naming the
argument; nothing may crash or hang. The default run uses a short budget; `make fuzz` sets
SIM_FUZZ_EXAMPLES (e.g. 3000) for a long one.
"""
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim_kernels import SmoothInfoNCELoss, smooth_infonce

EXAMPLES = int(os.environ.get("SIM_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("SIM_FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Each mutation breaks one rule and names the argument the error message must mention.
MUTATIONS = [
    ("context", lambda a: a.update(context=a["context"][0])),                       # 2-D
    ("targets", lambda a: a.update(targets=a["targets"][:, :-1])),                  # T mismatch
    ("weight", lambda a: a.update(weight=a["weight"][..., :-1] if a["weight"].shape[-1] > 1 else a["weight"][:, :, :0])),
    ("neg_idx", lambda a: a.update(neg_idx=a["neg_idx"].int())),                     # dtype
    ("neg_idx", lambda a: a.update(neg_idx=a["neg_idx"][..., :0])),                  # N = 0
    ("neg_idx", lambda a: a.update(neg_idx=a["neg_idx"] + a["context"].shape[0] * a["context"].shape[1])),
    ("neg_idx", lambda a: a.update(neg_idx=a["neg_idx"] - 10**6)),
    ("targets", lambda a: a.update(targets=a["targets"].float() if a["targets"].dtype == torch.float64 else a["targets"].double())),
    ("mu", lambda a: a.update(logvar=None)),
    ("mu", lambda a: a.update(mu=a["targets"].detach()[:, :, :0], logvar=a["targets"].detach()[:, :, :0])),
    ("beta", lambda a: a.update(beta=-1.0)),
    ("beta", lambda a: a.update(beta=float("nan"))),
    ("beta", lambda a: a.update(beta="0.1")),
    ("reduction", lambda a: a.update(reduction="avg")),
    ("kl_reduction", lambda a: a.update(kl_reduction="batch")),
    ("backend", lambda a: a.update(backend="cuda")),
    ("K", lambda a: a.update(weight=torch.zeros(a["context"].shape[1], *a["weight"].shape[1:], dtype=a["weight"].dtype))),
]


@st.composite
def problems(draw):
    B = draw(st.integers(1, 3))
    T = draw(st.integers(2, 12))
    K = draw(st.integers(1, T - 1))
    N = draw(st.integers(1, 5))
    Cc, Cz = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    shared = draw(st.booleans())
    with_kl = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    args = dict(
        context=(torch.randn(B, T, Cc, generator=g, dtype=dtype) * scale),
        targets=(torch.randn(B, T, Cz, generator=g, dtype=dtype) * scale),
        weight=torch.randn(K, Cz, Cc, generator=g, dtype=dtype),
        neg_idx=torch.randint(0, B * T, (B, T, N) if shared else (K, B, T, N), generator=g),
        mu=torch.randn(B, T, Cz, generator=g, dtype=dtype) if with_kl else None,
        logvar=torch.randn(B, T, Cz, generator=g, dtype=dtype) if with_kl else None,
        beta=draw(st.sampled_from([0.0, 0.01, 1.0])),
        kl_reduction=draw(st.sampled_from(["dims", "time"])),
        reduction=draw(st.sampled_from(["mean", "sum", "none"])),
    )
    return args


def _tolerance(args):
    """fp32 rounding of scores of magnitude |c| |W| |z| C (the fp32 cases reach ~1e4)."""
    if args["context"].dtype == torch.float64:
        return dict(rtol=1e-7, atol=1e-7)
    c, z, w = args["context"], args["targets"], args["weight"]
    mag = c.abs().max() * z.abs().max() * w.abs().max() * max(w.shape[1], w.shape[2])
    return dict(rtol=1e-4, atol=float(1e-6 * max(1.0, mag)))


@FUZZ
@given(problems())
def test_valid_inputs_match_reference(args):
    ref = smooth_infonce(**args, backend="reference")
    nat = smooth_infonce(**args, backend="native")
    torch.testing.assert_close(nat, ref, **_tolerance(args))


@FUZZ
@given(problems(), st.sampled_from(range(len(MUTATIONS))), st.sampled_from(["reference", "native"]))
def test_invalid_inputs_raise_naming_the_argument(args, which, backend):
    name, mutate = MUTATIONS[which]
    mutate(args)
    if name == "backend":
        backend = args.pop("backend")
    with pytest.raises((ValueError, TypeError), match=name):
        smooth_infonce(**args, backend=backend)


@FUZZ
@given(problems())
def test_module_matches_functional(args):
    c, z = args["context"], args["targets"]
    K, Cz, Cc = args["weight"].shape
    mod = SmoothInfoNCELoss(Cc, Cz, prediction_steps=K, negative_samples=args["neg_idx"].shape[-1], beta=args["beta"],
                            kl_reduction=args["kl_reduction"], reduction=args["reduction"], backend="native")
    with torch.no_grad():
        mod.weight.copy_(args["weight"].float())
    w = mod.weight.to(c.dtype)
    got = mod(c, z, args["mu"], args["logvar"], neg_idx=args["neg_idx"])
    beta = args["beta"] if args["mu"] is not None else 0.0
    want = smooth_infonce(c, z, w, args["neg_idx"], args["mu"], args["logvar"], beta=beta,
                          kl_reduction=args["kl_reduction"], reduction=args["reduction"], backend="reference")
    torch.testing.assert_close(got, want, **_tolerance(args) if c.dtype == torch.float32 else {})
