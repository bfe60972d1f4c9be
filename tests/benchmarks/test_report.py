"""benchmarks/report.py: pytest-benchmark JSON -> markdown tables, issue-3 targets, PNG.

The JSON here is built by hand in pytest-benchmark's layout with the extra_info that
benchmarks/test_smooth_infonce.py writes, so the ratios are known exactly.
"""
import json

import pytest
import torch

from benchmarks import report
from benchmarks._providers import FLOOR, MODES, PROVIDERS
from benchmarks._shapes import SHAPE_SETS, shape_from_id, shapes

T512, T64 = "B8-T512-C512-K10-N10", "B8-T64-C512-K10-N10"
MIB = 2 ** 20


CPU_PROVIDERS = ("eager", "compiled", "native")  # what a CPU run measures (Triton needs CUDA)


def _bench(shape, provider, mode, median, index, memory=None, sets=("paper",), dtype=None, events=None):
    ei = {"shape": shape, "provider": provider, "mode": mode, "shape_index": index, "sets": list(sets)}
    if dtype is not None:
        ei["dtype"] = dtype
    if events is not None:
        ei["cuda_event_s"] = {"min": events, "median": events, "mean": events, "rounds": 7}
    if memory is not None:
        ei["peak_extra_bytes"] = memory
        if mode == "fwd+bwd":
            ei["grad_bytes"] = 7 * MIB
    return {"name": f"test[{shape}-{provider}-{mode}]", "fullname": f"benchmarks/x.py::test[{shape}-{provider}-{mode}]",
            "group": shape, "extra_info": ei,
            "stats": {"median": median, "min": median * 0.9, "mean": median * 1.1, "rounds": 3}}


def _results_json(native=True):
    """T512: floor f+b 1 s, native f+b 1.2 s (1.2x: FAIL at <= 1.1), eager 4.6 s (3.83x: FAIL), compiled 2.4 s (2x: pass),
    memory native 10 MiB / eager 200 MiB = 0.05 (pass). T64: floor 0.1 s, native 0.14 s (1.4x: FAIL),
    memory 30 / 20 MiB (FAIL). fwd: a quarter of the fwd+bwd times (native: 3/8), floor 0.25 s at T512."""
    b = []
    for idx, shape, floor, times, mems in (
        (0, T512, 1.0, {"eager": 4.6, "compiled": 2.4, "native": 1.2}, {"eager": 200, "compiled": 120, "native": 10}),
        (2, T64, 0.1, {"eager": 0.5, "compiled": 0.3, "native": 0.14}, {"eager": 20, "compiled": 15, "native": 30}),
    ):
        b.append(_bench(shape, FLOOR, "fwd+bwd", floor, idx))
        b.append(_bench(shape, FLOOR, "fwd", floor / 4, idx))
        for p in CPU_PROVIDERS:
            if p == "native" and not native:
                continue
            b.append(_bench(shape, p, "fwd+bwd", times[p], idx, mems[p] * MIB))
            b.append(_bench(shape, p, "fwd", times[p] / 4 * (1.5 if p == "native" else 1), idx, mems[p] * MIB // 2))
    b.append({"name": "test_train_step[sim]", "fullname": "benchmarks/test_train_step.py::test_train_step[sim]",
              "extra_info": {}, "stats": {"median": 0.25, "min": 0.2, "mean": 0.3, "rounds": 5}})
    b.reverse()  # table order must come from shape_index, not from the file's order
    return {"machine_info": {"sim": {"cpu_model": "Test CPU 9000", "logical_cores": 2, "torch_version": "2.14.1",
                                     "torch_threads": 2, "native_cpu_kernel": native,
                                     "command": "python -m pytest benchmarks -q --benchmark-only"}},
            "commit_info": {"id": "0123456789abcdef", "dirty": False}, "datetime": "2026-11-25T19:00:00",
            "benchmarks": b}


def _status(r):
    return {(t.shape, t.what): (v, s) for t, v, s in report.target_rows(r)}


def test_targets_are_computed_from_the_cells():
    r = report.load(_results_json(), stat="median")
    st = _status(r)
    assert st[(T512, "native fwd+bwd / GEMM floor")] == (pytest.approx(1.2), "FAIL")
    assert st[(T512, "eager ref / native (fwd+bwd)")] == (pytest.approx(4.6 / 1.2), "FAIL")
    assert st[(T512, "compiled ref / native (fwd+bwd)")] == (pytest.approx(2.0), "pass")
    assert st[(T512, "peak extra memory native / eager ref (fwd+bwd)")] == (pytest.approx(0.05), "pass")
    assert st[(T64, "native fwd+bwd / GEMM floor")] == (pytest.approx(1.4), "FAIL")
    assert st[(T64, "peak extra memory native / eager ref (fwd+bwd)")] == (pytest.approx(1.5), "FAIL")


def test_stat_choice_is_used():
    r = report.load(_results_json())  # default: min
    assert r.stat == "min" and r.time(T512, "native", "fwd+bwd") == pytest.approx(1.2 * 0.9)
    with pytest.raises(ValueError, match="stat must be one of"):
        report.load(_results_json(), stat="max")


def test_markdown_table_cells_and_machine_line():
    r = report.load(_results_json(), stat="median")
    md = report.markdown(r, "benchmarks/results.json")
    assert "Machine: Test CPU 9000, 2 logical cores, torch 2.14.1, 2 torch threads; native CPU kernel: built" in md
    assert "`python -m pytest benchmarks -q --benchmark-only` then `python benchmarks/report.py benchmarks/results.json`" in md
    rows = [line for line in md.splitlines() if line.startswith(f"| {T512} (paper) |")]
    assert len(rows) == 2  # time table and memory table
    time_row = rows[0].split(" | ")
    # shape | floor fwd | floor f+b | eager, compiled, native fwd | eager, compiled, native f+b | speedups fwd, f+b | memory
    assert time_row[1:3] == ["250 ms", "1 s"]
    assert time_row[3:6] == ["1.15 s (4.60×)", "600 ms (2.40×)", "450 ms (1.80×)"]  # over the 1-GEMM floor
    assert time_row[6:9] == ["4.6 s (4.60×)", "2.4 s (2.40×)", "1.2 s (1.20×)"]  # over the 3-GEMM floor
    assert time_row[9:13] == ["2.56×", "1.33×", "3.83×", "2.00×"]
    assert time_row[13:16] == ["200 MiB", "120 MiB", "10 MiB"]
    assert time_row[16] == "0.050× |"
    assert rows[1].endswith("| 0.050× | 0.050× | 0.083× | 0.083× | 7 MiB |")  # memory table: ratios, .grad size
    # shape order follows shape_index (T512 before T64) although the JSON lists T64 first
    assert md.index(f"| {T512} (paper) |") < md.index(f"| {T64} (paper) |")
    assert "test_train_step.py::test_train_step[sim] | 250 ms | 5" in md


def test_missing_native_is_not_measured():
    r = report.load(_results_json(native=False), stat="median")
    assert {s for _, _, s in report.target_rows(r)} == {"not measured"}
    md = report.markdown(r)
    assert "native CPU kernel: NOT built" in md
    assert "| — |" in md


def test_main_writes_markdown_and_png(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_results_json()))
    assert report.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "### Targets (issues 3 and 17, CPU)" in out and "the min over the rounds" in out
    assert (tmp_path / "results.md").read_text() in out
    png = (tmp_path / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_bad_input_is_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"machine_info": {}}))
    with pytest.raises(ValueError, match="not a pytest-benchmark JSON"):
        report.load(bad)
    with pytest.raises(SystemExit):
        report.main([str(tmp_path / "missing.json")])


def test_report_constants_match_the_suite():
    """report.py does not import torch, so it keeps its own copy of the names: they must agree."""
    assert report.PROVIDERS == PROVIDERS and report.MODES == MODES and report.FLOOR == FLOOR
    ids = {s.id for s, _ in shapes("full")}
    assert {t.shape for t in report.CPU_TARGETS} <= ids
    gpu = {report.row_key(s.id, dt) for s, _ in shapes("gpu") for dt in ("float32", "bfloat16")}
    assert {t.shape for t in report.CUDA_TARGETS} <= gpu


def test_shape_tables():
    full = shapes("full")
    ids = [s.id for s, _ in full]
    assert len(ids) == len(set(ids)) == 16
    assert ids[0] == T512
    centre = dict(full)[shape_from_id("B8-T256-C256-K10-N10")]
    assert centre == ("sweep-T", "sweep-N", "sweep-K")
    assert all(shape_from_id(i).id == i for i in ids)
    with pytest.raises(ValueError, match="--sim-shapes"):
        shapes("paper,nope")
    with pytest.raises(ValueError, match="shape id must look like"):
        shape_from_id("B8-T512")


def test_native_skip_reason(monkeypatch):
    """Without a CPU kernel the native provider skips with a reason naming the check and the fix."""
    from benchmarks._providers import unavailable_reason
    from sim_kernels import _ext

    monkeypatch.setattr(_ext, "has_kernel", lambda device_type: False)
    reason = unavailable_reason("native")
    assert "no native cpu kernel" in reason and "pip install --no-build-isolation -e ." in reason
    assert unavailable_reason("eager") is None and unavailable_reason("compiled") is None
    monkeypatch.setattr(_ext, "has_kernel", lambda device_type: device_type == "cpu")
    assert unavailable_reason("native") is None
    assert "need CUDA tensors" in unavailable_reason("triton", "cpu")
    with pytest.raises(ValueError, match="provider must be one of"):
        unavailable_reason("cuda")
    with pytest.raises(ValueError, match="device must be"):
        unavailable_reason("native", "tpu")
    if not torch.cuda.is_available():
        assert "torch.cuda.is_available() is False" in unavailable_reason("native", "cuda")


def _cuda_results_json():
    """A CUDA run: fp32 and bf16 rows of T512 with CUDA-event times (the host times are 10x off on
    purpose: the report must read the events). fp32: floor 1 ms, native 1.2 ms (pass <= 1.3),
    compiled 6 ms (5x: pass), Triton 2 ms (1.67x: FAIL). bf16: floor 0.5 ms, native 0.8 ms (1.6x: FAIL)."""
    b = []
    for dt, floor, times in (("float32", 1e-3, {"eager": 9e-3, "compiled": 6e-3, "native": 1.2e-3, "triton": 2e-3}),
                             ("bfloat16", 0.5e-3, {"eager": 5e-3, "compiled": 3e-3, "native": 0.8e-3, "triton": 1e-3})):
        b.append(_bench(T512, FLOOR, "fwd+bwd", floor * 10, 0, dtype=dt, events=floor))
        for p, t in times.items():
            b.append(_bench(T512, p, "fwd+bwd", t * 10, 0, memory=(100 if p == "eager" else 5) * MIB, dtype=dt, events=t))
    return {"machine_info": {"sim": {"cpu_model": "Host", "logical_cores": 16, "torch_version": "2.11.0",
                                     "torch_threads": 16, "device": "cuda", "gpu": "NVIDIA H200", "gpu_sms": 132,
                                     "gpu_memory_gib": 139.8, "cuda_version": "13.0"}},
            "commit_info": {}, "datetime": "2026-11-30T04:00:00", "benchmarks": b}


def test_cuda_results_use_events_dtype_rows_and_gpu_targets():
    r = report.load(_cuda_results_json(), stat="median")
    bf16 = report.row_key(T512, "bfloat16")
    assert r.device == "cuda" and r.shapes == [T512, bf16]
    assert r.providers == ("eager", "compiled", "native", "triton")
    assert r.time(T512, "native", "fwd+bwd") == pytest.approx(1.2e-3)  # the event time, not the host time
    st = _status(r)
    assert st[(T512, "native fwd+bwd / GEMM floor")] == (pytest.approx(1.2), "pass")
    assert st[(T512, "compiled ref / native (fwd+bwd)")] == (pytest.approx(5.0), "pass")
    assert st[(T512, "Triton / native (fwd+bwd)")] == (pytest.approx(2e-3 / 1.2e-3), "FAIL")
    assert st[(T512, "peak extra memory native / eager ref (fwd+bwd)")] == (pytest.approx(0.05), "pass")
    assert st[(bf16, "native fwd+bwd / GEMM floor")] == (pytest.approx(1.6), "FAIL")
    md = report.markdown(r)
    assert "GPU: NVIDIA H200 (132 SMs" in md and "### Targets (issue 13, CUDA)" in md
    header = next(line for line in md.splitlines() if line.startswith("| shape | GEMM floor fwd |"))
    assert "| Triton fwd+bwd |" in header and "| Triton / native fwd+bwd |" in header
