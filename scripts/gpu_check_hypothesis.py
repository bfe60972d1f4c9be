"""A pytest plugin of `make gpu-check`'s fuzz stage (``-p scripts.gpu_check_hypothesis``): bounds Hypothesis.

Loaded before the test modules, so every ``@settings(...)`` made afterwards inherits this profile for
what it does not set itself. Without the shrink phase a failing example is reported at once: a
compile-heavy fuzz (each new block configuration compiles several Triton kernels) cannot spend its
stage cap shrinking (a per-test timeout fired inside Hypothesis would otherwise be shrunk as a
failure, recompiling each time). The example count stays the test's own (SIM_GPU_FUZZ_EXAMPLES).
"""
from hypothesis import Phase, settings

PHASES = (Phase.explicit, Phase.reuse, Phase.generate)  # no Phase.shrink, no Phase.explain

settings.register_profile("sim-gpu-check", phases=PHASES, print_blob=True, database=None)
settings.load_profile("sim-gpu-check")
