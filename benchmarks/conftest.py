"""Set-up of the benchmark suite: command-line options, thread count, the shape parameter,
machine info for the report, and a cache of eager-reference results for the correctness checks.

Options (all optional):
    --sim-shapes=full|smoke|paper,thesis,...   shape sets (benchmarks/_shapes.py); default full
    --sim-threads=N        torch threads (default: $SIM_BENCH_THREADS, else torch's default)
    --sim-budget=SECONDS   timed seconds aimed at per benchmark (rounds = budget / one-step time)
    --sim-min-rounds, --sim-max-rounds   bounds on the rounds (default 3 and 50)
    --sim-no-memory        skip the fresh-process peak-memory probe
    --sim-no-check         skip comparing compiled/native/triton results with the eager reference
    --sim-device=cpu|cuda  where the loss runs (default cpu); cuda times with CUDA events after a
                           warm-up and measures peak memory with torch.cuda.max_memory_allocated
    --sim-dtypes=LIST      comma list of input dtypes: float32, bfloat16, float16 (default float32)
    --sim-jsonl=PATH       append one JSON line per finished benchmark (survives a killed run)
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys

import pytest
import torch

from ._shapes import DTYPES, build_inputs, shapes


def pytest_addoption(parser):
    g = parser.getgroup("sim benchmarks")
    g.addoption("--sim-shapes", default="full", help="full, smoke, or a comma list of shape sets (default full)")
    g.addoption("--sim-threads", type=int, default=int(os.environ.get("SIM_BENCH_THREADS", "0")) or None,
                help="torch threads for the timings and the memory probe (default: $SIM_BENCH_THREADS or torch's default)")
    g.addoption("--sim-budget", type=float, default=2.0, help="timed seconds aimed at per benchmark (default 2)")
    g.addoption("--sim-min-rounds", type=int, default=3, help="at least this many timed rounds (default 3)")
    g.addoption("--sim-max-rounds", type=int, default=50, help="at most this many timed rounds (default 50)")
    g.addoption("--sim-no-memory", action="store_true", help="do not run the peak-memory probe subprocesses")
    g.addoption("--sim-no-check", action="store_true", help="do not check results against the eager reference")
    g.addoption("--sim-device", choices=("cpu", "cuda"), default="cpu", help="device of the inputs (default cpu)")
    g.addoption("--sim-dtypes", default="float32", help="comma list of float32, bfloat16, float16 (default float32)")
    g.addoption("--sim-jsonl", default=None, help="append one JSON line per finished benchmark to this file")
    g.addoption("--sim-w2v-shapes", default="w2v2-small,w2v2-base",
                help="comma list of the wav2vec 2.0 loss shapes (benchmarks/_wav2vec2.py)")



def parse_dtypes(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in DTYPES]
    if bad or not names:
        raise pytest.UsageError(f"--sim-dtypes must be a comma list of {sorted(DTYPES)}, got {text!r}")
    return names


def pytest_configure(config):
    threads = config.getoption("--sim-threads", default=None)
    if threads:
        torch.set_num_threads(threads)


def pytest_generate_tests(metafunc):
    if "sim_shape" in metafunc.fixturenames:
        table = shapes(metafunc.config.getoption("--sim-shapes"))
        metafunc.parametrize("sim_shape", [s for s, _ in table], ids=[s.id for s, _ in table])
    if "w2v_shape" in metafunc.fixturenames:
        from ._wav2vec2 import W2V_SHAPES

        ids = [s.strip() for s in metafunc.config.getoption("--sim-w2v-shapes").split(",") if s.strip()]
        bad = [i for i in ids if i not in W2V_SHAPES]
        if bad or not ids:
            raise pytest.UsageError(f"--sim-w2v-shapes must be a comma list of {sorted(W2V_SHAPES)}, got {ids}")
        metafunc.parametrize("w2v_shape", ids, ids=ids)
    if "sim_dtype" in metafunc.fixturenames:
        names = parse_dtypes(metafunc.config.getoption("--sim-dtypes"))
        metafunc.parametrize("sim_dtype", names, ids=names)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pytest_benchmark_update_machine_info(config, machine_info):
    from sim_kernels import _ext

    machine_info["sim"] = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "native_cpu_kernel": _ext.has_kernel("cpu"),
        "native_cuda_kernel": _ext.has_kernel("cuda"),
        "device": config.getoption("--sim-device"),
        "dtypes": parse_dtypes(config.getoption("--sim-dtypes")),
        "command": "python -m pytest " + shlex.join(sys.argv[1:]),
        "shape_selection": config.getoption("--sim-shapes"),
        "stat_note": "times are per call (iterations=1); GEMM floor outputs preallocated",
    }
    if config.getoption("--sim-device") == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        machine_info["sim"].update({"gpu": props.name, "gpu_sms": props.multi_processor_count,
                                    "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                                    "cuda_version": torch.version.cuda,
                                    "stat_note": "CUDA: times from CUDA events per round after a warm-up; "
                                                 "GEMM floor outputs preallocated"})


@pytest.fixture(scope="session")
def sim_options(pytestconfig):
    class Options:
        threads = torch.get_num_threads()
        budget = pytestconfig.getoption("--sim-budget")
        min_rounds = pytestconfig.getoption("--sim-min-rounds")
        max_rounds = pytestconfig.getoption("--sim-max-rounds")
        memory = not pytestconfig.getoption("--sim-no-memory")
        check = not pytestconfig.getoption("--sim-no-check")
        selection = pytestconfig.getoption("--sim-shapes")
        device = pytestconfig.getoption("--sim-device")
        jsonl = pytestconfig.getoption("--sim-jsonl")

        @classmethod
        def append_jsonl(cls, row: dict) -> None:
            """One finished benchmark as a JSON line (flushed at once: a killed run keeps what finished)."""
            if cls.jsonl:
                with open(cls.jsonl, "a") as f:
                    f.write(json.dumps(row) + "\n")

        @classmethod
        def rounds(cls, seconds_per_call: float) -> int:
            want = int(cls.budget / max(seconds_per_call, 1e-9))
            return max(cls.min_rounds, min(cls.max_rounds, want))

        @classmethod
        def sets_of(cls, shape) -> tuple[str, ...]:
            return dict(shapes(cls.selection))[shape]

    return Options


class ReferenceResults:
    """Eager-reference loss (and grads for fwd+bwd) per (shape, dtype, device, mode), for checking the other providers.

    The eager benchmark stores its warm-up result here; a provider that runs first computes it.
    Only the most recent shape is kept, so the cache never holds more than one shape's grads.
    """

    def __init__(self):
        self._shape = None
        self._cache: dict = {}

    def store(self, shape, mode, loss, x) -> None:
        """``shape``: any hashable key of the inputs (the suite passes (shape, dtype, device))."""
        if shape != self._shape:
            self._shape, self._cache = shape, {}
        grads = [t.grad.detach().clone() for t in x.leaves()] if mode == "fwd+bwd" else None
        self._cache[mode] = (loss.detach().clone(), grads)

    def get(self, key, mode):
        """(loss, grads or None) of the eager reference on build_inputs(shape, dtype, device), key = (shape, dtype, device)."""
        if key != self._shape or mode not in self._cache:
            from ._providers import make_step

            shape, dtype, device = key
            x = build_inputs(shape, requires_grad=(mode == "fwd+bwd"), dtype=DTYPES[dtype], device=device)
            self.store(key, mode, make_step("eager", mode, x)(), x)
        return self._cache[mode]


@pytest.fixture(scope="session")
def reference_results():
    return ReferenceResults()


def pytest_collection_modifyitems(config, items):
    """Run each shape's GEMM floor right after that shape's providers (same machine state), not
    all floors at the end: a stable sort of this suite's items by shape-table position."""
    table = [s for s, _ in shapes(config.getoption("--sim-shapes"))]
    mine = [i for i, it in enumerate(items) if it.path.name == "test_smooth_infonce.py"
            and "sim_shape" in getattr(getattr(it, "callspec", None), "params", {})]
    ordered = sorted((items[i] for i in mine), key=lambda it: table.index(it.callspec.params["sim_shape"]))
    for i, it in zip(mine, ordered):
        items[i] = it
