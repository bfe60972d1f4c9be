"""Fuzz campaign over the public functional and the module (hypothesis).

Valid inputs must match the reference, values and every gradient (native and, in the Triton
interpreter, triton); invalid ones must raise ValueError/TypeError naming the argument; nothing may
crash or hang. The default run uses a short budget; `make fuzz` sets SIM_FUZZ_EXAMPLES (e.g. 3000)
for a long one (Triton runs 1/30 of it: the interpreter takes ~0.5 s a call).
"""
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim_kernels import SmoothInfoNCELoss, smooth_infonce

from .inputs import make_inputs, tol

EXAMPLES = int(os.environ.get("SIM_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("SIM_FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_TRITON = settings(FUZZ, max_examples=max(5, EXAMPLES // 30))

# Each mutation breaks one rule and names the argument the error message must mention.
MUTATIONS = [
    ("context", lambda a: a.update(context=a["context"][0])),                       # 2-D
    ("targets", lambda a: a.update(targets=a["targets"][:, :-1])),                  # T mismatch
    ("weight", lambda a: a.update(weight=a["weight"][..., :-1] if a["weight"].shape[-1] > 1 else a["weight"][:, :, :0])
     if a["weight"] is not None else a.update(weight=a["context"].new_zeros(1, 1, 1))),  # a weight with score='dot'
    ("first_step", lambda a: a.update(first_step=-1)),
    ("first_step", lambda a: a.update(first_step=a["context"].shape[1])),  # no anchor left
    ("score", lambda a: a.update(score="l2")),
    ("neg_idx", lambda a: a.update(neg_idx=a["neg_idx"].int())),                     # dtype
    ("neg_idx", lambda a: a.update(neg_idx=a["neg_idx"][..., :0])),                  # N = 0
    ("neg_idx", lambda a: a.update(neg_idx=a["neg_idx"] + a["context"].shape[0] * a["context"].shape[1])),
    ("neg_idx", lambda a: a.update(neg_idx=a["neg_idx"] - 10**6)),
    ("targets", lambda a: a.update(targets=a["targets"].float() if a["targets"].dtype == torch.float64 else a["targets"].double())),
    ("mu", lambda a: a.update(logvar=None) if a["mu"] is not None else a.update(mu=a["targets"].detach().clone())),  # one of the two
    ("mu", lambda a: a.update(mu=a["targets"].detach()[:, :, :0], logvar=a["targets"].detach()[:, :, :0])),
    ("beta", lambda a: a.update(beta=-1.0)),
    ("beta", lambda a: a.update(beta=float("nan"))),
    ("beta", lambda a: a.update(beta="0.1")),
    ("reduction", lambda a: a.update(reduction="avg")),
    ("kl_reduction", lambda a: a.update(kl_reduction="batch")),
    ("backend", lambda a: a.update(backend="cuda")),
    ("K", lambda a: a.update(weight=torch.zeros(a["context"].shape[1], *a["weight"].shape[1:], dtype=a["weight"].dtype))
     if a["weight"] is not None else a.update(first_step=a["context"].shape[1])),
]


@st.composite
def problems(draw):
    B = draw(st.integers(1, 3))
    T = draw(st.integers(2, 12))
    K = draw(st.integers(1, T - 1))
    N = draw(st.integers(1, 5))
    score = draw(st.sampled_from(["bilinear", "bilinear", "dot", "cosine"]))
    first_step = draw(st.integers(0, min(2, T - K)))  # first_step + K - 1 < T
    Cc, Cz = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    if score != "bilinear":
        Cz = Cc
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    shared = draw(st.booleans())
    with_kl = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    x = make_inputs(B, T, Cc, Cz, K, N, dtype=dtype, shared=shared, with_kl=with_kl, seed=seed, requires_grad=False)
    args = dict(
        x.as_dict(),
        context=x.context * scale,
        targets=x.targets * scale,
        beta=draw(st.sampled_from([0.0, 0.01, 1.0])),
        kl_reduction=draw(st.sampled_from(["dims", "time"])),
        reduction=draw(st.sampled_from(["mean", "sum", "anchor_sum", "none"])),
        first_step=first_step,
        score=score,
    )
    if score != "bilinear":
        args["weight"] = None  # K is neg_idx's (K, B, T, N) first dim; 1 for shared (B, T, N) negatives
    if draw(st.booleans()):  # masked anchors (wav2vec 2.0)
        args["anchor_mask"] = torch.rand(B, T, generator=torch.Generator().manual_seed(seed)) < 0.6
    return args


def _tolerance(args):
    """fp32 rounding of scores of magnitude |c| |W| |z| C (the fp32 cases reach ~1e4)."""
    if args["context"].dtype == torch.float64:
        return tol(torch.float64)
    c, z, w = args["context"], args["targets"], args["weight"]
    if args["score"] == "cosine":
        c, z = (x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8) for x in (c, z))
    w_mag, C = (w.abs().max(), max(w.shape[1], w.shape[2])) if w is not None else (1.0, c.shape[-1])
    mag = c.abs().max() * z.abs().max() * w_mag * C
    return dict(rtol=1e-4, atol=float(1e-6 * max(1.0, mag)))


@FUZZ
@given(problems())
def test_valid_inputs_match_reference(args):
    ref = smooth_infonce(**args, backend="reference")
    nat = smooth_infonce(**args, backend="native")
    torch.testing.assert_close(nat, ref, **_tolerance(args))


@FUZZ
@given(problems(), st.sampled_from(range(len(MUTATIONS))), st.sampled_from(["reference", "native", "triton"]))
def test_invalid_inputs_raise_naming_the_argument(args, which, backend):
    name, mutate = MUTATIONS[which]
    mutate(args)
    if name == "backend":
        backend = args.pop("backend")
    with pytest.raises((ValueError, TypeError), match=name):
        smooth_infonce(**args, backend=backend)


LEAVES = ("context", "targets", "weight", "mu", "logvar")


def _value_and_grads(args, backend, upstream, dtype=None):
    """smooth_infonce(**args) on leaf copies (cast to ``dtype``), backward of sum(out * upstream).
    Returns [out, grad of each given input] (None inputs skipped)."""
    leaves = {k: args[k].detach().to(dtype or args[k].dtype).requires_grad_(True) for k in LEAVES if args[k] is not None}
    out = smooth_infonce(**{**args, **leaves}, backend=backend)
    (out * upstream.to(out.dtype)).sum().backward()
    return [out.detach()] + [leaves[k].grad for k in LEAVES if k in leaves]


def _check_grads_against_reference(args, backend, seed):
    """float64: equal to the float64 reference (1e-7). float32: our max error vs the float64 reference
    at most 4x the float32 reference's own, plus a floor of 1e-5 x the tensor's max.

    The 2x rule (flash-attention's) is for low precision over realistic tensors. At fuzz sizes (a few dozen rows)
    one element's rounding luck in a score decides the max error: over 600 seeds at scale 30 the
    native kernel exceeded 2x the reference's error once (2.3x), while the reference exceeded 2x
    ours in 60 % of them (torch's log-softmax rounds relative to the log-sum-exp, ~1e-3 at |s| ~ 1e4;
    the kernels round relative to the loss, csrc/smooth_infonce.h). The kernels' old lse-relative
    form failed this check at 6-8x."""
    g = torch.Generator().manual_seed(seed)
    K, (B, T) = args["neg_idx"].shape[0] if args["neg_idx"].dim() == 4 else 1, args["context"].shape[:2]
    shape = (K, B, T) if args["reduction"] == "none" else ()
    upstream = torch.randn(shape, generator=g, dtype=torch.float64)
    got = _value_and_grads(args, backend, upstream)
    exact = _value_and_grads(args, "reference", upstream, torch.float64)
    if args["context"].dtype == torch.float64:
        for a, b in zip(got, exact):
            torch.testing.assert_close(a, b, **tol(torch.float64))
        return
    ref32 = _value_and_grads(args, "reference", upstream)
    names = ["out"] + [k for k in LEAVES if args[k] is not None]
    for name, a, r, e in zip(names, got, ref32, exact):  # max errors, as flash-attention's rule
        if e is None:  # reduction="none": mu and logvar are not in the graph
            assert a is None, f"{backend} {name}: a gradient where the reference has none"
            continue
        ours, theirs = float((a.double() - e).abs().max()), float((r.double() - e).abs().max())
        floor = 1e-5 * float(e.abs().max()) + 1e-6
        assert ours <= 4 * theirs + floor, (f"{backend} {name}: error {ours:.3g} > 4 x reference error "
                                            f"{theirs:.3g} + {floor:.3g}")


@FUZZ
@given(problems(), st.integers(0, 2**31 - 1))
def test_valid_inputs_gradients_match_reference_native(args, seed):
    _check_grads_against_reference(args, "native", seed)


@FUZZ_TRITON
@given(problems(), st.integers(0, 2**31 - 1))
def test_valid_inputs_gradients_match_reference_triton(args, seed):
    _check_grads_against_reference(args, "triton", seed)


@FUZZ
@given(problems())
def test_module_matches_functional(args):
    c, z = args["context"], args["targets"]
    Cc, Cz = c.shape[-1], z.shape[-1]
    K = args["neg_idx"].shape[0] if args["neg_idx"].dim() == 4 else (
        args["weight"].shape[0] if args["weight"] is not None else 1)
    sampler = "gim" if args["first_step"] == 1 else "within_sequence"  # the module refuses gim otherwise
    mod = SmoothInfoNCELoss(Cc, Cz, prediction_steps=K, negative_samples=args["neg_idx"].shape[-1], beta=args["beta"],
                            kl_reduction=args["kl_reduction"], reduction=args["reduction"], backend="native",
                            sampler=sampler, first_step=args["first_step"], score=args["score"])
    w = None
    if args["weight"] is not None:
        with torch.no_grad():
            mod.weight.copy_(args["weight"].float())
        w = mod.weight.to(c.dtype)
    got = mod(c, z, args["mu"], args["logvar"], neg_idx=args["neg_idx"], anchor_mask=args.get("anchor_mask"))
    beta = args["beta"] if args["mu"] is not None else 0.0
    want = smooth_infonce(c, z, w, args["neg_idx"], args["mu"], args["logvar"], beta=beta,
                          kl_reduction=args["kl_reduction"], reduction=args["reduction"], backend="reference",
                          first_step=args["first_step"], score=args["score"], anchor_mask=args.get("anchor_mask"))
    torch.testing.assert_close(got, want, **_tolerance(args) if c.dtype == torch.float32 else {})
