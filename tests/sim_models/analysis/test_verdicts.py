"""Verdict logic (sim_models/analysis/verdicts.py): the interval rule on hand-computed cases, every claim's
three outcomes, one-seed inputs are inconclusive, the paper's tables ship with the package."""
import json
import math
import tomllib
from pathlib import Path

import pytest

from sim_models.analysis import verdicts as V
from sim_models.analysis.verdicts import (INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Measurement, Verdict, all_verdicts, fig2_concentration, paper_tables, table2_above_random, table2_close, table2_supervised_best, table3_delta, verdict_blocks, verdicts_from_json, verdicts_to_json)
from sim_models.util.document import to_markdown

ROOT = Path(__file__).resolve().parents[3]


def M(mean, std=1.0, n=3):
    return Measurement(mean, std, n)


def test_measurement():
    m = Measurement.of([1.0, 2.0, 3.0])
    assert (m.mean, m.std, m.n) == (2.0, 1.0, 3)
    assert Measurement.of([5.0]) == Measurement(5.0, 0.0, 1)
    assert Measurement.coerce({"mean": 1, "std": 0.5, "n": 4}) == Measurement(1.0, 0.5, 4)
    with pytest.raises(ValueError, match="values"):
        Measurement.of([])
    with pytest.raises(ValueError, match="n must be"):
        Measurement(1.0, 0.0, 0)
    with pytest.raises(ValueError, match="std"):
        Measurement(1.0, -1.0, 2)
    with pytest.raises(TypeError, match="measured"):
        Measurement.coerce("90 %", "measured")
    with pytest.raises(ValueError, match="status"):
        Verdict("c", "maybe", "", "", "")


def test_decide_welch_interval_by_hand():
    a, b = M(10.0, 1.0, 10), M(0.0, 1.0, 10)
    # se = sqrt(0.1 + 0.1); df = 18; t(0.975, 18) = 2.1009
    half = 2.100922 * math.sqrt(0.2)
    state, d = V._decide(a, b, 5.0)
    assert state == "holds" and d["low"] == pytest.approx(10 - half, abs=1e-4)
    assert V._decide(a, b, 12.0)[0] == "fails"
    assert V._decide(a, b, 10.0)[0] == "undecided"
    assert V._decide(M(10.0, 0.0, 1), M(0.0, 0.0, 1), 5.0)[0] == "undecided"  # one seed: no spread
    assert V._decide(M(10.0, 0.0, 2), M(0.0, 0.0, 2), 5.0)[0] == "holds"      # zero spread: the means decide


def _t2(**kw):
    return {m: {"vowel": v, "syllable": s} for m, (v, s) in kw.items()}


def test_table2_close():
    ok = table2_close(_t2(SIM=(M(90), M(45)), GIM=(M(91), M(47)), CPC=(M(92), M(46))))
    assert ok.status == REPRODUCED and "92.6 ± 2.1 %" in ok.paper and "SIM 90.0 ± 1.0 % (n=3)" in ok.measured
    far = table2_close(_t2(SIM=(M(70), M(45)), GIM=(M(90), M(47))))
    assert far.status == NOT_REPRODUCED and "vowel: SIM − GIM > −6: fails" in far.reason
    # a 5.5-point gap with this spread cannot be told from 6: inconclusive, not a pass
    edge = table2_close(_t2(SIM=(M(90), M(45)), GIM=(M(95.5), M(47))))
    assert edge.status == INCONCLUSIVE
    one = table2_close(_t2(SIM=(M(90, 0, 1), M(45, 0, 1)), GIM=(M(91, 0, 1), M(47, 0, 1))))
    assert one.status == INCONCLUSIVE and "fewer than 2 seeds" in one.reason
    # SIM ahead of the baselines is "close"
    assert table2_close(_t2(SIM=(M(99), M(80)), GIM=(M(90), M(47)))).status == REPRODUCED
    with pytest.raises(ValueError, match="GIM or CPC"):
        table2_close(_t2(SIM=(M(90), M(45))))
    with pytest.raises(ValueError, match="SIM"):
        table2_close(_t2(GIM=(M(90), M(45))))


def test_table2_above_random_and_supervised():
    base = dict(SIM=(M(90), M(45)), GIM=(M(91), M(50)), random=(M(33, 2), M(10, 2)))
    assert table2_above_random(_t2(**base)).status == REPRODUCED
    near = dict(base, SIM=(M(40, 2), M(45)))  # 7 points above random, interval straddles 10
    assert table2_above_random(_t2(**near)).status == INCONCLUSIVE
    low = dict(base, SIM=(M(34, 2), M(45)))
    assert table2_above_random(_t2(**low)).status == NOT_REPRODUCED
    sup = table2_supervised_best(_t2(supervised=(M(91), M(83)), SIM=(M(92), M(45)), GIM=(M(95), M(50))))
    assert sup.status == REPRODUCED and "83.3 ± 2.1 %" in sup.paper
    assert table2_supervised_best(_t2(supervised=(M(91), M(40)), SIM=(M(92), M(45)))).status == NOT_REPRODUCED
    assert table2_supervised_best(_t2(supervised=(M(91), M(45.5)), SIM=(M(92), M(45)))).status == INCONCLUSIVE


def test_table3_delta_per_module():
    t3 = paper_tables()["paper_table3_delta_percent"]
    i = t3["N"].index(8)
    # the paper's own means (module 1, N = 8) with a modest spread reproduce the claim
    paper_like = {m: M(t3["module1"][m][i], 2.0) for m in ("SIM", "GIM", "CPC")}
    v = table3_delta(paper_like, module=1, n_dims=8, width=512)
    assert v.status == REPRODUCED and "SIM 37.4 %" in v.paper and "N = 8 of 512" in v.measured
    # the tiny measurement: SIM 70 vs GIM 54 (SIM's δ is the larger)
    assert table3_delta({"SIM": M(70, 3), "GIM": M(54, 3)}, module=1, width=48).status == NOT_REPRODUCED
    assert table3_delta({"SIM": M(70, 3), "GIM": M(78, 3)}, module=2).status == INCONCLUSIVE
    assert "no paper figure" in table3_delta({"SIM": M(1), "GIM": M(50)}, module=1, n_dims=3).paper
    with pytest.raises(ValueError, match="module"):
        table3_delta({"SIM": M(1), "GIM": M(2)}, module=0)
    with pytest.raises(ValueError, match="n_dims must be below"):
        table3_delta({"SIM": M(1), "GIM": M(2)}, module=1, n_dims=8, width=8)


def test_fig2_concentration():
    v = fig2_concentration({"SIM": M(0.21, 0.01), "GIM": M(0.27, 0.02), "CPC": M(0.25, 0.02)}, module=1)
    assert v.status == NOT_REPRODUCED and "histograms only" in v.paper and "SIM 87.5 %" in v.paper
    assert fig2_concentration({"SIM": M(0.5, 0.01), "GIM": M(0.27, 0.02)}, module=2).status == REPRODUCED
    assert fig2_concentration({"SIM": M(0.27, 0.02), "GIM": M(0.27, 0.02)}, module=3).status == INCONCLUSIVE


def test_all_verdicts_render_and_round_trip():
    measured = {"table2": _t2(SIM=([90, 91, 89], [45, 44, 46]), GIM=([91, 92, 90], [50, 49, 51]),
                              random=([33, 35, 31], [10, 11, 9]), supervised=([91, 90, 92], [83, 84, 82])),
                "table3": {1: {"n_dims": 8, "width": 48, "SIM": [70, 71, 69], "GIM": [54, 55, 53]}},
                "fig2": {"1": {"SIM": [0.21, 0.22, 0.2], "GIM": [0.27, 0.28, 0.26]}}}
    vs = all_verdicts(measured)
    assert [v.claim.split(":")[0] for v in vs] == ["Table 2", "Table 2", "Table 2", "Table 3, module 1", "Fig. 2, module 1"]
    # syllables: SIM trails GIM by 5 points, interval [-7.3, -2.7] straddles -6 -> inconclusive
    assert [v.status for v in vs] == [INCONCLUSIVE, REPRODUCED, REPRODUCED, NOT_REPRODUCED, NOT_REPRODUCED]
    again = verdicts_from_json(verdicts_to_json(vs))
    assert [v.to_dict() for v in again] == json.loads(verdicts_to_json(vs))
    md = to_markdown(verdict_blocks(vs))
    assert md.startswith("## Verdicts") and md.count("| not reproduced |") == 2 and md.count("| reproduced |") == 2 and "| inconclusive |" in md
    with pytest.raises(ValueError, match="list"):
        verdicts_from_json("{}")


def test_paper_tables_ship_with_the_package():
    t = paper_tables()
    assert t["paper_table2_accuracy_percent"]["SIM"][0] == [92.58, 2.06] and "source" in t
    shared = ROOT.parent / "shared" / "paper_tables.json"
    if not shared.is_file():
        shared = Path("/work/shared/paper_tables.json")
    if shared.is_file():  # the copy matches its source
        src = json.loads(shared.read_text())
        assert {k: v for k, v in t.items() if k != "_package_note"} == src
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "paper_tables.json" in pyproject["tool"]["setuptools"]["package-data"]["sim_models.analysis"]
