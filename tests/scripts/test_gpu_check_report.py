"""The report side of `make gpu-check` (scripts/gpu_check_report.py), on hand-made inputs:
ptxas -v logs, JUnit XML, compute-sanitizer verdicts, benchmark JSON lines -> JSON, markdown, PNG."""
import json

import pytest

from scripts import gpu_check_report as rep

PTXAS = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_ZN3sim11anchor_rowsIfEEvPKT_' for 'sm_90'
ptxas info    : Function properties for _ZN3sim11anchor_rowsIfEEvPKT_
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 96 registers, used 1 barriers, 4096 bytes smem, 480 bytes cmem[0]
ptxas info    : Function properties for _ZN3sim6helperEv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function '_ZN3sim7scatterEv' for 'sm_90'
ptxas info    : Function properties for _ZN3sim7scatterEv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 32 registers, 400 bytes cmem[0]
"""

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.sim_kernels.test_gpu" name="test_a[native]" time="0.1"/>
<testcase classname="tests.sim_kernels.test_gpu" name="test_b[triton]" time="0.1">
  <failure message="AssertionError: grad of weight: mismatch">trace</failure></testcase>
<testcase classname="tests.sim_kernels.test_cuda" name="test_c" time="0.0">
  <skipped type="pytest.skip" message="no CUDA device">skip</skipped></testcase>
<testcase classname="tests.sim_kernels.test_cuda" name="test_d" time="0.0">
  <skipped type="pytest.skip" message="no CUDA device">skip</skipped></testcase>
<testcase classname="tests.sim_kernels.test_cuda" name="test_e" time="0.0"><error message="fixture broke"/></testcase>
</testsuite></testsuites>"""


def test_parse_ptxas_keeps_entry_functions_only():
    k = rep.parse_ptxas(PTXAS)
    assert [x["function"] for x in k] == ["_ZN3sim11anchor_rowsIfEEvPKT_", "_ZN3sim7scatterEv"]
    assert k[0] == {"function": "_ZN3sim11anchor_rowsIfEEvPKT_", "arch": "sm_90", "registers": 96, "smem_bytes": 4096,
                    "stack_bytes": 8, "spill_store_bytes": 4, "spill_load_bytes": 12}
    assert k[1]["registers"] == 32 and k[1]["smem_bytes"] == 0 and k[1]["spill_load_bytes"] == 0
    assert rep.parse_ptxas("no ptxas here") == []


def test_parse_junit_counts_and_failures(tmp_path):
    path = tmp_path / "t.xml"
    path.write_text(JUNIT)
    r = rep.parse_junit(path)
    assert (r["passed"], r["failed"], r["errors"], r["skipped"]) == (1, 1, 1, 2)
    assert r["failures"][0] == {"test": "tests.sim_kernels.test_gpu::test_b[triton]",
                                "message": "AssertionError: grad of weight: mismatch"}
    assert r["skip_reasons"] == {"no CUDA device": 2}


@pytest.mark.parametrize("log, errors", [
    ("========= COMPUTE-SANITIZER\n========= ERROR SUMMARY: 0 errors\n", 0),
    ("========= Invalid __global__ read of size 4\n========= ERROR SUMMARY: 3 errors\n", 3),
    ("========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n", 0),
    ("========= RACECHECK SUMMARY: 2 hazards displayed (2 errors, 0 warnings)\n", 2),
    ("python crashed before the summary\n", None),
])
def test_parse_sanitizer_verdicts(log, errors):
    v = rep.parse_sanitizer(log)
    assert v["errors"] == errors
    assert all("SUMMARY" in ln for ln in v["summary_lines"])


def _rows():
    rows = []
    for dt, floor, native in (("float32", 1e-3, 1.2e-3), ("bfloat16", 4e-4, 9e-4)):
        for provider, t in (("gemm_floor", floor), ("native", native), ("triton", native * 1.1), ("eager", native * 9)):
            ev = {"min": t, "median": t, "mean": t, "rounds": 9}
            rows.append({"shape": "B8-T512-C512-K10-N10", "provider": provider, "mode": "fwd+bwd", "dtype": dt,
                         "device": "cuda", "shape_index": 0, "sets": ["paper"], "cuda_event_s": ev,
                         "host_s": {k: (v * 10 if k != "rounds" else v) for k, v in ev.items()},
                         "peak_extra_bytes": None if provider == "gemm_floor" else 2**20 * (90 if provider == "eager" else 4)})
    return rows


def _result(bench=True):
    return {"started": "2026-11-30T04:00:00+00:00", "commit": "abc1234", "dry_run": not bench,
            "env": {"python": "3.12.3", "torch": "2.11.0+cu130", "triton": "3.6.0", "nvcc": "13.0", "cpus": 16,
                    "gpu": "NVIDIA H200"},
            "stages": [{"name": "env", "status": "ok", "seconds": 1.0},
                       {"name": "build", "status": "ok", "seconds": 80.0},
                       {"name": "tests", "status": "failed", "seconds": 60.0, "summary": "1 failed"},
                       {"name": "memcheck", "status": "skipped", "seconds": 0.0, "reason": "no GPU"}],
            "tests": {"passed": 10, "failed": 1, "errors": 0, "skipped": 2,
                      "failures": [{"test": "t::x", "message": "boom"}], "skip_reasons": {"why": 2}},
            "sanitizers": {"memcheck": {"summary_lines": ["========= ERROR SUMMARY: 0 errors"], "errors": 0}},
            "ptxas": rep.parse_ptxas(PTXAS),
            "bench_rows": _rows() if bench else [],
            "bench_machine": {"device": "cuda" if bench else "cpu", "gpu": "NVIDIA H200", "gpu_sms": 132},
            "train_rows": [{"train_step": "sim-paper", "config": "sim-paper", "backend": "native", "device": "cuda",
                            "step_s": {"median": 0.02}, "loss_seconds": 0.004, "loss_share": 0.2}],
            "thread_rows": [{"shape": "B8-T512-C512-K10-N10", "threads": 1, "seconds": 1.0},
                            {"shape": "B8-T512-C512-K10-N10", "threads": 4, "seconds": 0.3}]}


def test_write_outputs_with_benchmarks(tmp_path):
    paths = rep.write_outputs(_result(), tmp_path)
    assert json.loads(paths["json"].read_text())["commit"] == "abc1234"
    md = paths["md"].read_text()
    assert "| tests | failed | 60.0 s | 1 failed |" in md
    assert "10 passed, 1 failed, 0 errors, 2 skipped" in md and "FAILED `t::x`: boom" in md
    assert "memcheck: ========= ERROR SUMMARY: 0 errors" in md
    assert "| `_ZN3sim11anchor_rowsIfEEvPKT_` | sm_90 | 96 | 4096 | 8 | 4 | 12 |" in md
    # the CUDA-event times, not the (10x) host times, and the bf16 row beside the fp32 one
    assert "| B8-T512-C512-K10-N10 (paper) | — | 1 ms |" in md
    assert "| B8-T512-C512-K10-N10-bfloat16 (paper) |" in md
    assert "Targets (issue 13, CUDA)" in md
    assert "| sim-paper | native | cuda | 20.00 ms | 4.00 ms | 0.20 |" in md
    assert "| B8-T512-C512-K10-N10 | 4 | 300.00 ms | 3.33× |" in md
    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_write_outputs_without_benchmarks_draws_the_stages(tmp_path):
    paths = rep.write_outputs(_result(bench=False), tmp_path)
    assert "dry run (no GPU)" in paths["md"].read_text()
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_bench_json_skips_rows_without_times():
    rows = _rows() + [{"shape": "x", "provider": "native", "mode": "fwd"}, {"train_step": "tiny"}]
    assert len(rep.bench_json(rows)["benchmarks"]) == len(_rows())


def test_tree_copy_ignores_top_level_data_but_keeps_the_data_package():
    from scripts import gpu_check

    names = ["data", "build", "runs", ".venv", "sim_models", "_C.cpython-311.so", "__pycache__"]
    assert gpu_check._copy_ignore(str(gpu_check.ROOT), names) == {"data", "build", "runs", ".venv",
                                                                  "_C.cpython-311.so", "__pycache__"}
    inner = gpu_check._copy_ignore(str(gpu_check.ROOT / "sim_models"), names)
    assert "data" not in inner and "build" not in inner and "__pycache__" in inner


def test_test_stage_results_add_up():
    from scripts import gpu_check

    total = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failures": [], "skip_reasons": {}}
    part = {"passed": 3, "failed": 1, "errors": 0, "skipped": 2, "failures": [{"test": "a", "message": "m"}],
            "skip_reasons": {"no GPU": 2}}
    gpu_check._add_tests(total, part)
    gpu_check._add_tests(total, part)
    assert (total["passed"], total["failed"], total["skipped"]) == (6, 2, 4)
    assert len(total["failures"]) == 2 and total["skip_reasons"] == {"no GPU": 4}


def test_a_failing_plot_loses_neither_json_nor_markdown(tmp_path, monkeypatch):
    def broken(stages, png):
        raise RuntimeError("no matplotlib backend")

    monkeypatch.setattr(rep, "_stage_chart", broken)
    result = _result(bench=False)
    result["triton_resources"] = [{"kernel": "anchor+grad", "dtype": "fp32", "width": 2048, "arch": 90, "num_warps": 16,
                                   "reg": 128, "stack": 512, "shared": 393216, "limit": 232448, "over_limit": True}]
    paths = rep.write_outputs(result, tmp_path)
    saved = json.loads(paths["json"].read_text())
    assert saved["report_error"] == "RuntimeError: no matplotlib backend" and "png" not in paths
    md = paths["md"].read_text()
    assert "| tests | failed | 60.0 s | 1 failed |" in md
    assert "| anchor+grad | fp32 | 2048 | sm_90 | 16 | 128 | 512 | 393216 **over** | 232448 |" in md


def test_summary_is_replaced_whole(tmp_path):
    rep.write_summary({"stages": [{"name": "env", "status": "running", "seconds": 0.0}]}, tmp_path)
    rep.write_summary({"stages": [{"name": "env", "status": "ok", "seconds": 1.0}]}, tmp_path)
    assert json.loads((tmp_path / "gpu_check.json").read_text())["stages"][0]["status"] == "ok"
    assert not list(tmp_path.glob("*.tmp"))
