"""Shared test set-up. Triton runs in its interpreter on CPU tensors unless a GPU is present;
the variable must be set before anything imports triton."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# `make test` runs the suite in two pytest-xdist workers on this project's 2-core machines: one torch thread each
# there (two threads per worker would oversubscribe the cores and OpenMP spins); a test that needs two threads sets
# them itself. A plain `pytest` keeps up to two.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, torch.get_num_threads())))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
