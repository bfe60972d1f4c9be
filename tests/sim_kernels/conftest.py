"""Fixtures shared by the sim_kernels tests."""
import pytest

from sim_kernels import _ext

BACKENDS = ("reference", "native")


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each CPU backend; the native kernel is part of the product, so its absence fails."""
    if request.param == "native" and not _ext.has_kernel("cpu"):
        pytest.fail(f"the native CPU kernel is missing (sim_kernels._C: {_ext.LOAD_ERROR}); the build is part of "
                    "the product")
    return request.param
