"""`sim tune-beta`: the collapse test on synthetic numbers and on a model whose posteriors are the prior,
the choice of β, and a tiny sweep through the real parser that resumes without redoing a β."""
import json

import pytest
import torch

from sim_models.analysis.beta_search import CollapseRule, choose_beta, heldout_metrics, judge
from sim_models.cli import main
from sim_models.config import apply_overrides, get_config
from sim_models.trainer import build_model

from .test_analysis_run import LENGTH, make_toy_syllable_data
from .test_run_info import SHRINK


def _row(stage, acc, au=None, width=8, chance=1 / 11):
    return {"stage": stage, "probabilistic": au is not None, "width": width, "accuracy": acc, "chance": chance,
            "active_units": au}


def test_judge_rule():
    floor = 1 / 11 + 0.05 * (10 / 11)   # 13.6 %
    ok = judge([_row(0, floor + 1e-6, 3), _row(1, 0.5, 1), _row(2, 0.3)])
    assert ok == {"collapsed": False, "reasons": []}
    low = judge([_row(0, 0.5, 3), _row(1, floor - 1e-6, 5)])
    assert low["collapsed"] and len(low["reasons"]) == 1 and "module 2" in low["reasons"][0]
    dead = judge([_row(0, 0.9, 0), _row(1, 0.9, 4)])
    assert dead["collapsed"] and "0 active units of 8" in dead["reasons"][0]
    assert not judge([_row(0, None, None), _row(1, 0.9, None)])["collapsed"]  # no loss / deterministic: nothing to test
    assert not judge([_row(0, 0.12, 2)], CollapseRule(min_accuracy_gain=0.0))["collapsed"]
    with pytest.raises(ValueError, match="min_accuracy_gain"):
        CollapseRule(min_accuracy_gain=1.5)
    with pytest.raises(ValueError, match="min_active_units"):
        CollapseRule(min_active_units=-1)


def test_choose_beta_largest_with_every_smaller_passing():
    rs = [{"beta": b, "collapsed": c} for b, c in ((0.01, True), (0.0, False), (0.001, False), (0.02, False))]
    assert choose_beta(rs) == {"beta": 0.001, "non_monotone": [0.02]}
    assert choose_beta([{"beta": 0.0, "collapsed": True}])["beta"] is None
    assert choose_beta([{"beta": 0.0, "collapsed": False}, {"beta": 0.5, "collapsed": False}])["beta"] == 0.5


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
    assert [r["active_units"] for r in dead[:2]] == [0, 0] and dead[2]["active_units"] is None
    assert dead[0]["accuracy"] == 0.0 and dead[0]["kl_mean"] == 0.0   # ties count as wrong
    assert dead[0]["chance"] == pytest.approx(1 / (cfg.model.negative_samples + 1))
    assert judge(dead)["collapsed"]
    # the untrained model with the tiny config's logvar init (sigma ~ 0.14) keeps every unit active
    assert alive[0]["active_units"] == alive[0]["width"] == 8 and len(alive[0]["kl_per_dim"]) == 8
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
        assert r["collapsed"] == judge(r["modules"])["collapsed"]
    assert sweep["chosen_beta"] == choose_beta(sweep["runs"])["beta"]
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = out / "beta_0" / "checkpoint.pt"
    before = (ckpt.stat().st_mtime_ns, ckpt.read_bytes())
    capsys.readouterr()
    assert main(argv + ["--betas", "0", "0.5", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("done before, skipped") == 2 and "β = 2: training" in printed
    assert (ckpt.stat().st_mtime_ns, ckpt.read_bytes()) == before
    assert [r["beta"] for r in json.loads((out / "sweep.json").read_text())["runs"]] == [0.0, 0.5, 2.0]
    assert "| β | module 1 | module 2 | module 3 | verdict |" in printed
    with pytest.raises(ValueError, match="another --out"):
        main(argv[:-3] + ["--epochs", "2", "--no-progress", "--betas", "0"])
    with pytest.raises(ValueError, match="betas must be finite and >= 0"):
        main(argv + ["--betas", "-1"])
