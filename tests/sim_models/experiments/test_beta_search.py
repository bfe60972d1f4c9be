"""`sim tune-beta`: the two failure kinds ("did not learn" vs "collapsed") on constructed numbers, re-applied
to a stored sweep; the search verdicts; the price per nat and the default grid in the authors' units; a
model whose posteriors are the prior; a tiny real sweep through the parser that resumes without redoing a β."""
import json
from pathlib import Path

import pytest
import torch

from sim_models.experiments.beta_search import (BOTH, COLLAPSED, DEFAULT_BETAS, DID_NOT_LEARN, OK, SEARCH_ALL_COLLAPSED, SEARCH_CHOSEN, SEARCH_CHOSEN_UNDER_TRAINED_ABOVE, SEARCH_SMALLEST_COLLAPSED, SEARCH_UNDER_TRAINED, SEARCH_VERDICTS, VERDICTS, CollapseRule, choose_beta, default_betas, heldout_metrics, judge, price_per_nat, stage_geometry, sweep_table, tune_beta)
from sim_models.model.greedy import count_frames
from sim_models.cli import main
from sim_models.config import SMALL_BETA, apply_overrides, get_config
from sim_models.model.greedy import build_model

from tests.sim_models.analysis.test_analysis_run import LENGTH, make_toy_syllable_data
from tests.sim_models.rundir.test_run_info import SHRINK

FLOOR = 1 / 11 + 0.05 * (10 / 11)   # 13.6 % for N = 10


def _row(stage, acc, au=None, width=8, chance=1 / 11, au_var=None):
    """A stored heldout_metrics row: au None = deterministic module."""
    return {"stage": stage, "probabilistic": au is not None, "width": width, "accuracy": acc, "chance": chance,
            "active_units": au, "active_units_kl": au, "active_units_variance": au_var}


def test_chance_accuracy_with_active_units_did_not_learn_not_collapsed():
    v = judge([_row(0, 0.5, 8), _row(1, FLOOR - 1e-6, 5), _row(2, 0.3)])
    assert v["verdict"] == DID_NOT_LEARN and v["did_not_learn"] and not v["collapsed"] and not v["passed"]
    assert len(v["reasons"]) == 1 and v["reasons"][0].startswith("module 2 did not learn")
    assert v["notes"] == []
    # the GRU (no posterior) at chance: did not learn, never "collapsed"
    assert judge([_row(0, 0.5, 8), _row(1, 1 / 11)])["verdict"] == DID_NOT_LEARN


def test_decent_accuracy_with_no_active_unit_is_collapsed():
    v = judge([_row(0, 0.6, 0, au_var=0), _row(1, 0.7, 4), _row(2, 0.8)])
    assert v["verdict"] == COLLAPSED and v["collapsed"] and not v["did_not_learn"] and not v["passed"]
    assert "module 1 collapsed: 0 of 8 units" in v["reasons"][0]
    assert len(v["notes"]) == 1 and "yet held-out accuracy 60.0 %" in v["notes"][0]


def test_both_failures_are_both_named():
    v = judge([_row(0, 0.05, 0), _row(1, 0.5, 3)])        # the same module
    assert v["verdict"] == BOTH and v["collapsed"] and v["did_not_learn"] and len(v["reasons"]) == 2
    assert v["notes"] == []                                 # no "decent accuracy" note when it did not learn
    w = judge([_row(0, 0.6, 0), _row(1, 0.05, 3)])         # different modules
    assert w["verdict"] == BOTH


def test_rule_edges_and_arguments():
    ok = judge([_row(0, FLOOR + 1e-6, 1), _row(1, 0.5, 1), _row(2, 0.3)])
    assert ok == {"verdict": OK, "did_not_learn": False, "collapsed": False, "passed": True, "reasons": [], "notes": []}
    assert judge([_row(0, None, None), _row(1, 0.9, None)])["passed"]   # no loss / deterministic: nothing to test
    assert judge([_row(0, 0.12, 2)], CollapseRule(min_accuracy_gain=0.0))["passed"]
    assert judge([_row(0, 0.9, 0)], CollapseRule(min_active_units=0))["passed"]
    # an older stored row with only "active_units" is judged the same
    assert judge([{"stage": 0, "probabilistic": True, "width": 8, "accuracy": 0.9, "chance": 1 / 11,
                   "active_units": 0}])["verdict"] == COLLAPSED
    assert set(VERDICTS) == {OK, DID_NOT_LEARN, COLLAPSED, BOTH}
    with pytest.raises(ValueError, match="min_accuracy_gain"):
        CollapseRule(min_accuracy_gain=1.5)
    with pytest.raises(ValueError, match="min_active_units"):
        CollapseRule(min_active_units=-1)


def _runs(*pairs):
    return [{"beta": b, **{k: v for k, v in judge(mods).items() if k in ("verdict", "passed", "collapsed",
                                                                         "did_not_learn")}} for b, mods in pairs]


LEARNED = [_row(0, 0.6, 8), _row(1, 0.7, 8)]
UNDER = [_row(0, 0.6, 8), _row(1, 0.09, 8)]
DEAD = [_row(0, 0.6, 0), _row(1, 0.7, 0)]
DEAD_UNDER = [_row(0, 0.09, 0), _row(1, 0.09, 0)]


@pytest.mark.parametrize("pairs, beta, search", [
    (((0.0, LEARNED), (0.001, LEARNED), (0.01, DEAD)), 0.001, SEARCH_CHOSEN),
    (((0.0, LEARNED), (0.001, LEARNED), (0.01, DEAD_UNDER)), 0.001, SEARCH_CHOSEN),
    (((0.0, LEARNED), (0.001, LEARNED)), 0.001, SEARCH_CHOSEN),
    (((0.0, LEARNED), (0.001, UNDER), (0.01, DEAD)), 0.0, SEARCH_CHOSEN_UNDER_TRAINED_ABOVE),
    (((0.0, UNDER), (0.001, UNDER)), None, SEARCH_UNDER_TRAINED),
    (((0.0, DEAD_UNDER), (0.01, DEAD_UNDER)), None, SEARCH_UNDER_TRAINED),
    (((0.0, DEAD), (0.01, DEAD_UNDER)), None, SEARCH_ALL_COLLAPSED),
    (((0.0, DEAD), (0.01, UNDER)), None, SEARCH_SMALLEST_COLLAPSED),
])
def test_search_verdict(pairs, beta, search):
    c = choose_beta(_runs(*pairs))
    assert c["beta"] == beta and c["search_verdict"] == search and search in SEARCH_VERDICTS
    assert c["search_reason"]
    if search == SEARCH_UNDER_TRAINED:
        assert "lengthen the runs" in c["search_reason"] and "collapsed" not in c["search_verdict"]


def test_choose_beta_largest_with_every_smaller_passing():
    rs = [{"beta": b, "collapsed": c} for b, c in ((0.01, True), (0.0, False), (0.001, False), (0.02, False))]
    c = choose_beta(rs)   # older records: only "collapsed"
    assert (c["beta"], c["non_monotone"], c["first_failure"]) == (0.001, [0.02], 0.01)
    assert choose_beta([{"beta": 0.0, "collapsed": True}])["beta"] is None
    assert choose_beta([{"beta": 0.0, "collapsed": False}, {"beta": 0.5, "collapsed": False}])["beta"] == 0.5


def test_price_per_nat_in_the_authors_and_the_papers_units():
    paper = get_config("sim-paper")
    assert stage_geometry(paper) == {"frames": [511, 129, 64, 64], "widths": [512, 512, 512, 256],
                                     "probabilistic": [True, True, True, False], "kl_reduction": "time",
                                     "length": 10240}
    p = price_per_nat(paper)            # β = 0.01, "time": β·T_m/C_m
    assert p[3] is None and p[:3] == pytest.approx([0.01 * 511 / 512, 0.01 * 129 / 512, 0.01 * 64 / 512])
    small = get_config("sim-small")     # the carried β buys the paper's price at 48 channels
    assert price_per_nat(small) == pytest.approx(p[:3] + [None])
    assert price_per_nat(small, beta=0.01)[0] == pytest.approx(0.01 * 511 / 48)   # 0.106: ten times the paper's
    tiny = get_config("tiny")           # "dims": β in every probabilistic module
    assert tiny.model.kl_reduction == "dims"
    assert price_per_nat(tiny, beta=0.003) == [0.003, 0.003, None]
    assert price_per_nat(tiny.model, length=10240) == [0.001, 0.001, None]
    with pytest.raises(ValueError, match="length"):
        price_per_nat(tiny.model)


def test_default_grid_in_the_authors_units():
    small = default_betas(get_config("sim-small"))
    assert 0.01 in small and SMALL_BETA in small and 0.0 in small and SMALL_BETA == 0.01 * 48 / 512
    assert list(small) == sorted(set(small)) and len(small) == 6
    assert default_betas(get_config("sim-paper")) == pytest.approx((0.0, 0.001, 0.003, 0.01, 0.03))
    assert default_betas(get_config("tiny")) == DEFAULT_BETAS          # "dims"
    narrow = apply_overrides(get_config("sim-small"), ["model.channels=[8,8,8,8,8]"])
    assert 0.01 * 8 / 512 in default_betas(narrow)


def _stored_sweep(tmp_path, config, overrides, runs):
    """A sweep.json holding constructed measurements for every β of ``runs`` ({β: modules}), with the settings
    tune_beta derives, so that tune_beta trains nothing and re-applies the rules to the stored numbers."""
    data = make_toy_syllable_data(tmp_path / "data", num_words=6)
    out = tmp_path / "sweep"
    out.mkdir()
    cfg = apply_overrides(get_config(config), overrides + ["train.epochs=1"])
    settings = {"config": config, "epochs": 1, "overrides": overrides, "data": str(Path(data).resolve()),
                "seed": cfg.train.seed}
    recs = [{"beta": b, "run_dir": f"beta_{b:g}", "steps": 2, "seconds": 0.0, "modules": mods, "verdict": "stale",
             "collapsed": True} for b, mods in runs.items()]
    (out / "sweep.json").write_text(json.dumps({"settings": settings, "runs": recs}))
    logs = []
    sweep = tune_beta(config, data, out, list(runs), 1, overrides, log=logs.append)
    assert not any(": training " in line or ": resuming " in line for line in logs)
    assert sum("done before, skipped" in line for line in logs) == len(runs)
    assert json.loads((out / "sweep.json").read_text())["search_verdict"] == sweep["search_verdict"]
    return cfg, sweep


def test_stored_sweep_is_rejudged_and_priced_time(tmp_path):
    overrides = list(SHRINK)
    w = 8
    runs = {0.0: [_row(0, 0.5, w, au_var=w), _row(1, 0.6, w, au_var=w), _row(2, 0.6, w, au_var=5), _row(3, 0.7)],
            0.01: [_row(0, 0.4, 6, au_var=2), _row(1, 0.5, 5, au_var=1), _row(2, 0.05, 3, au_var=0),  # under-trained
                   _row(3, 0.6)],
            0.1: [_row(0, 0.3, 0, au_var=0), _row(1, 0.5, 2, au_var=0), _row(2, 0.4, 1, au_var=0),   # collapsed, learns
                  _row(3, 0.5)]}
    cfg, sweep = _stored_sweep(tmp_path, "sim-small", overrides, runs)
    assert [r["verdict"] for r in sweep["runs"]] == [OK, DID_NOT_LEARN, COLLAPSED]
    assert [r["collapsed"] for r in sweep["runs"]] == [False, False, True]
    assert sweep["chosen_beta"] == 0.0 and sweep["search_verdict"] == SEARCH_CHOSEN_UNDER_TRAINED_ABOVE
    frames = count_frames(cfg.model, LENGTH)
    assert sweep["stage_frames"] == frames and sweep["stage_widths"] == [w, w, w, w] and sweep["kl_reduction"] == "time"
    r = sweep["runs"][1]
    assert r["price_per_nat"] == pytest.approx([0.01 * t / w for t in frames[:3]] + [None])
    assert r["modules"][0]["price_per_nat"] == pytest.approx(0.01 * frames[0] / w)
    assert r["modules"][3]["price_per_nat"] is None
    table = sweep_table(sweep)
    assert "| β | price per nat (m1 / m2 / m3) | module 1 | module 2 | module 3 | module 4 | verdict |" in table
    assert f"| 0.01 | {0.01 * frames[0] / w:.3g} / {0.01 * frames[1] / w:.3g} / {0.01 * frames[2] / w:.3g} |" in table
    assert "| did not learn |" in table and "| collapsed |" in table and "8 · 8 of 8 active" in table
    assert "5.0 %, 3 · 0 of 8 active" in table
    assert "search: chosen; the next β did not learn" in table and r"β \* T\_m / C\_m" in table
    assert "- β = 0.1: module 1: no active unit, yet held-out accuracy 30.0 %" in table


def test_stored_sweep_under_training_is_not_called_collapse_dims(tmp_path):
    runs = {0.0: [_row(0, 0.1, 8, au_var=3), _row(1, 0.09, 8, au_var=2), _row(2, 0.09)],
            0.001: [_row(0, 0.1, 8, au_var=3), _row(1, 0.09, 7, au_var=1), _row(2, 0.09)]}
    _, sweep = _stored_sweep(tmp_path, "tiny", list(SHRINK), runs)
    assert [r["verdict"] for r in sweep["runs"]] == [DID_NOT_LEARN, DID_NOT_LEARN]
    assert sweep["chosen_beta"] is None and sweep["search_verdict"] == SEARCH_UNDER_TRAINED
    assert sweep["runs"][1]["price_per_nat"] == [0.001, 0.001, None] and sweep["kl_reduction"] == "dims"
    table = sweep_table(sweep)
    assert "collapsed" not in table.split("search:")[0] and "under-trained: lengthen the runs" in table


def _tiny_model():
    cfg = apply_overrides(get_config("tiny"), SHRINK)
    return cfg, build_model(cfg)


def test_heldout_metrics_detects_a_collapsed_model():
    """Posterior = prior everywhere (mu heads 0, logvar heads 0): KL 0 in every dim, all scores tie -> collapsed."""
    cfg, model = _tiny_model()
    audio = torch.randn(6, LENGTH, generator=torch.Generator().manual_seed(0)) * 0.1
    alive = heldout_metrics(model, audio, cfg.model.negative_samples, batch_size=4)
    with torch.no_grad():
        for st in model.stages[:2]:
            for head in (st.mu_head, st.logvar_head):
                head.weight.zero_()
                head.bias.zero_()
    dead = heldout_metrics(model, audio, cfg.model.negative_samples, batch_size=4)
    assert [r["probabilistic"] for r in dead] == [True, True, False]
    assert [r["active_units_kl"] for r in dead[:2]] == [0, 0] == [r["active_units"] for r in dead[:2]]
    assert [r["active_units_variance"] for r in dead[:2]] == [0, 0] and dead[2]["active_units_variance"] is None
    assert dead[0]["accuracy"] == 0.0 and dead[0]["kl_mean"] == 0.0   # ties count as wrong
    assert dead[0]["chance"] == pytest.approx(1 / (cfg.model.negative_samples + 1))
    assert judge(dead)["verdict"] == BOTH
    # the untrained model with the tiny config's logvar init (sigma ~ 0.14) keeps every unit active by KL
    assert alive[0]["active_units_kl"] == alive[0]["width"] == 8 and len(alive[0]["kl_per_dim"]) == 8
    assert len(alive[0]["var_mu_per_dim"]) == 8 and 0 <= alive[0]["active_units_variance"] <= 8
    with pytest.raises(ValueError, match="audio"):
        heldout_metrics(model, torch.zeros(0, LENGTH), 4)


def test_tune_beta_cli_sweeps_and_resumes(tmp_path, capsys):
    data = make_toy_syllable_data(tmp_path / "data", num_words=12)
    out = tmp_path / "sweep"
    # overrides before --betas (which takes several values)
    argv = ["tune-beta", *SHRINK, "--config", "tiny", "--data", str(data), "--out", str(out), "--epochs", "1",
            "--no-progress"]
    assert main(argv + ["--betas", "0", "0.5"]) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert [r["beta"] for r in sweep["runs"]] == [0.0, 0.5]
    for r in sweep["runs"]:
        assert (out / r["run_dir"] / "checkpoint.pt").is_file() and r["steps"] == 2
        assert len(r["modules"]) == 3 and all(0 <= m["accuracy"] <= 1 for m in r["modules"])
        assert r["verdict"] == judge(r["modules"])["verdict"] and r["verdict"] in VERDICTS
        assert r["price_per_nat"] == [r["beta"], r["beta"], None]
        assert all(m["active_units_variance"] is not None for m in r["modules"][:2])
    assert sweep["chosen_beta"] == choose_beta(sweep["runs"])["beta"]
    assert sweep["search_verdict"] in SEARCH_VERDICTS
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = out / "beta_0" / "checkpoint.pt"
    before = (ckpt.stat().st_mtime_ns, ckpt.read_bytes())
    capsys.readouterr()
    assert main(argv + ["--betas", "0", "0.5", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("done before, skipped") == 2 and "β = 2: training" in printed
    assert (ckpt.stat().st_mtime_ns, ckpt.read_bytes()) == before
    assert [r["beta"] for r in json.loads((out / "sweep.json").read_text())["runs"]] == [0.0, 0.5, 2.0]
    assert "| β | price per nat (m1 / m2) | module 1 | module 2 | module 3 | verdict |" in printed
    assert "search: " in printed
    with pytest.raises(ValueError, match="another --out"):
        main(argv[:-3] + ["--epochs", "2", "--no-progress", "--betas", "0"])
    with pytest.raises(ValueError, match="betas must be finite and >= 0"):
        main(argv + ["--betas", "-1"])
