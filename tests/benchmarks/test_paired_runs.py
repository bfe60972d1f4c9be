"""benchmarks/paired_runs.py: per-target values over several runs, their median, spread and status."""
import pytest

from benchmarks import paired_runs, report

T64, N128 = "B8-T64-C512-K10-N10", "B8-T128-C256-K12-N128"
T512 = paired_runs.BF16_SHAPE


def _bench(shape, provider, mode, seconds, dtype="float32"):
    ei = {"shape": shape, "provider": provider, "mode": mode, "shape_index": 0, "sets": ["paper"], "dtype": dtype}
    return {"name": f"t[{shape}-{dtype}-{provider}-{mode}]", "fullname": "x", "extra_info": ei,
            "stats": {"min": seconds, "median": seconds, "mean": seconds, "rounds": 3}}


def _run(native_t64, native_n128, compiled_n128):
    """T64: floor fwd+bwd 1 s; N128: floor 1 s. Values: native/floor and compiled/native."""
    b = [_bench(T64, report.FLOOR, "fwd+bwd", 1.0), _bench(T64, "native", "fwd+bwd", native_t64),
         _bench(N128, report.FLOOR, "fwd+bwd", 1.0), _bench(N128, "native", "fwd+bwd", native_n128),
         _bench(N128, "compiled", "fwd+bwd", compiled_n128)]
    return report.load({"machine_info": {}, "benchmarks": b})


def _bf16_run(fp32_floor, bf16_native, bf16_floor):
    b = [_bench(T512, report.FLOOR, "fwd+bwd", fp32_floor), _bench(T512, "native", "fwd+bwd", bf16_native, "bfloat16"),
         _bench(T512, report.FLOOR, "fwd+bwd", bf16_floor, "bfloat16")]
    return report.load({"machine_info": {}, "benchmarks": b})


def _row(rows, what, shape):
    return next(r for r in rows if r[0] == what and r[1] == shape)


def test_values_median_spread_and_status():
    runs = [_run(1.1, 2.5, 30.0), _run(1.3, 3.0, 24.0), _run(1.15, 2.0, 16.0)]
    rows = paired_runs.target_summary(runs)
    what, shape, bound, values, med, spread, status = _row(rows, "native fwd+bwd / GEMM floor", T64)
    assert bound == "<= 1.2" and values == pytest.approx([1.1, 1.3, 1.15])
    assert med == pytest.approx(1.15) and spread == pytest.approx((1.3 - 1.1) / 1.15)
    assert status == "mixed"
    assert _row(rows, "native fwd+bwd / GEMM floor", N128)[6] == "mixed"  # 2.5, 3.0, 2.0: only 2.0 <= 2
    speed = _row(rows, "compiled ref / native (fwd+bwd)", N128)
    assert speed[3] == pytest.approx([12.0, 8.0, 8.0]) and speed[6] == "mixed"
    # targets with a missing cell in some run are left out, not reported as measured
    assert not [r for r in rows if r[1] == T512]


def test_all_pass_and_all_fail():
    assert _row(paired_runs.target_summary([_run(1.0, 1.5, 30.0)] * 3), "native fwd+bwd / GEMM floor", N128)[6] == "pass"
    assert _row(paired_runs.target_summary([_run(1.5, 3.0, 3.0)] * 3), "native fwd+bwd / GEMM floor", T64)[6] == "FAIL"


def test_bf16_row_divides_the_fp32_floor_by_bf16_native():
    rows = paired_runs.bf16_summary([_bf16_run(1.0, 0.5, 0.4), _bf16_run(1.0, 0.8, 0.4), _bf16_run(1.2, 0.6, 0.5)])
    what, shape, bound, values, med, spread, status = rows[0]
    assert shape == f"{T512}-bfloat16" and bound == ">= 1.5"
    assert values == pytest.approx([2.0, 1.25, 2.0]) and med == pytest.approx(2.0) and status == "mixed"
    own = _row(rows, "bf16 native fwd+bwd / bf16 GEMM floor", f"{T512}-bfloat16")
    assert own[3] == pytest.approx([1.25, 2.0, 1.2]) and own[6] == "—"


def test_markdown_and_png(tmp_path):
    rows = paired_runs.target_summary([_run(1.1, 2.5, 30.0), _run(1.3, 3.0, 24.0), _run(1.15, 2.0, 16.0)])
    md = paired_runs.markdown(rows, 3, ["a.json", "b.json", "c.json"])
    assert "| native fwd+bwd / GEMM floor | B8-T64-C512-K10-N10 | <= 1.2 | 1.100 | 1.300 | 1.150 | 1.150 | 17% | mixed |" in md
    png = paired_runs.plot(rows, tmp_path / "p.png")
    assert png.stat().st_size > 5000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_pads_a_group_with_fewer_runs():
    rows = paired_runs.target_summary([_run(1.1, 2.5, 30.0)] * 3)
    rows += paired_runs.bf16_summary([_bf16_run(1.0, 0.5, 0.4)] * 2)
    md = paired_runs.markdown(rows, 3, ["a", "b", "c", "d", "e"]).splitlines()
    table = [line for line in md if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1  # every row has the header's cells
    assert any("| — |" in line for line in table)
