"""Shared fixtures for sim_models tests: one torch thread (small convs on a busy 2-core machine are
many times slower with two), a tiny espeak-ng data set built once per session."""
import shutil

import pytest
import torch

from sim_models.config import apply_overrides, get_config


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Module scope: it also covers module-scoped fixtures (the analysis tests' trained model)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_config(name="tiny", *overrides):
    """A named config shrunk for tests (channels only; the layout, K, N and beta stay)."""
    return apply_overrides(get_config(name), list(overrides))


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng / make system-deps)")


@pytest.fixture(scope="session")
def syllable_data(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng / make system-deps)")
    from sim_models.data.synth import generate
    out = tmp_path_factory.mktemp("syllables")
    generate(out, num_words=12, seed=5)
    return out
