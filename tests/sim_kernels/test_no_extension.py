"""The package imports and works without the compiled extension (installed without a compiler)."""
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys, warnings
    sys.modules["sim_kernels._C"] = None          # as if the extension was never built
    import torch
    import sim_kernels
    from sim_kernels import _ext, smooth_infonce, smooth_infonce_reference, SmoothInfoNCELoss
    assert not _ext.available() and not _ext.has_kernel("cpu")
    torch.manual_seed(0)
    c, z = torch.randn(2, 9, 4), torch.randn(2, 9, 4)
    w, idx = torch.randn(3, 4, 4), torch.randint(0, 18, (2, 9, 5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = smooth_infonce(c, z, w, idx)
        b = smooth_infonce(c, z, w, idx)
        SmoothInfoNCELoss(4, prediction_steps=3, negative_samples=2)(c, z)
    msgs = [str(x.message) for x in caught if "sim_kernels._C is not built" in str(x.message)]
    assert len(msgs) == 1, msgs
    torch.testing.assert_close(a, smooth_infonce_reference(c, z, w, idx))
    torch.testing.assert_close(a, b)
    try:
        smooth_infonce(c, z, w, idx, backend="native")
    except RuntimeError as e:
        assert "sim_kernels._C" in str(e), e
    else:
        raise AssertionError("backend='native' without the extension must raise")
    print("OK")
""")


def test_works_without_extension():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("OK")
