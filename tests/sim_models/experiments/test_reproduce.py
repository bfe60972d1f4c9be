"""`sim reproduce`: the step runner, the measurements fed to the verdicts, and kill-and-rerun.

The kill tests run a shrunk "tiny" budget (24 words, 8 channels, 2 epochs, SIM + GIM, 2 seeds) in
subprocesses and SIGKILL them at exact points: after a step's result is written
(SIM_REPRODUCE_KILL_AFTER, sim_models/experiments/reproduce/steps.py) and in the middle of a training run
(SIM_TEST_PAUSE_AT, sim_models/util/fault_injection.py). The rerun must redo nothing that was finished (result
files and checkpoints keep their mtimes and contents) and resume the half-trained run from its checkpoint.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sim_models.rundir.checkpoint import load_checkpoint
from sim_models.experiments.reproduce.budgets import get_budget
from sim_models.experiments.reproduce.measure import measurements
from sim_models.experiments.reproduce.steps import ENV_KILL_AFTER, StepRunner
from sim_models.rundir.checkpoint import CHECKPOINT_NAME

from tests.sim_models.conftest import needs_espeak

REPO = Path(__file__).resolve().parents[3]

MICRO = """
import sys
from sim_models.experiments.reproduce.budgets import get_budget
from sim_models.experiments.reproduce.pipeline import reproduce
b = get_budget("tiny").with_(words=24, epochs={"SIM": 2, "GIM": 2}, betas=(0.0, 0.001), tune_epochs=1,
    probe_epochs=2, probe_seeds=2, common=("model.channels=[8,8,8,8,8]", "model.ar_hidden=8"),
    report=dict(decoder_epochs=1, max_decoder_utterances=8, tsne_iterations=250, tsne_max_points=60,
                few_label_sizes=(1,), few_label_seeds=1, few_label_epochs=2, delta_utterances=3, probe_epochs=2,
                traversal_steps=3, traversal_dims=1, interpolation_steps=3, audio_examples=1,
                activation_utterances=8), analyse_seeds=1)
reproduce(b, sys.argv[1], sys.argv[2], progress=False, jobs=int(sys.argv[3]) if len(sys.argv) > 3 else 1)
"""


# ---- step runner -------------------------------------------------------------------------------------------------

def test_step_runner_runs_once_and_stores_the_result(tmp_path):
    calls = []
    r = StepRunner(tmp_path, log=lambda s: None)
    assert r.run("a", lambda: calls.append(1) or {"x": 1}) == {"x": 1}
    r2 = StepRunner(tmp_path, log=lambda s: None)
    assert r2.run("a", lambda: calls.append(2) or {"x": 2}) == {"x": 1}
    assert calls == [1] and r2.skipped == ["a"] and r.ran == ["a"]
    assert not list((tmp_path / "steps").glob("*.tmp"))


def test_step_runner_keeps_nothing_of_a_failed_step(tmp_path):
    r = StepRunner(tmp_path, log=lambda s: None)
    with pytest.raises(RuntimeError):
        r.run("b", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert not r.done("b")
    assert r.run("b", lambda: 5) == 5


def _pid_and(x):
    return {"pid": os.getpid(), "x": x}


def _fail_on(x):
    if x == "bad":
        raise ValueError("bad input")
    return x


def test_run_many_runs_steps_in_worker_processes_and_records_each(tmp_path):
    StepRunner(tmp_path, log=lambda s: None).run("c", lambda: {"pid": 0, "x": "from before"})
    r = StepRunner(tmp_path, log=lambda s: None)
    out = r.run_many([("a", _pid_and, (1,)), ("b", _pid_and, (2,)), ("c", _pid_and, (3,))], jobs=2)
    assert list(out) == ["a", "b", "c"] and [v["x"] for v in out.values()] == [1, 2, "from before"]
    assert {out["a"]["pid"], out["b"]["pid"]}.isdisjoint({os.getpid(), 0})  # other processes
    assert sorted(r.ran) == ["a", "b"] and r.skipped == ["c"]
    again = StepRunner(tmp_path, log=lambda s: None).run_many([("a", _pid_and, (9,)), ("b", _pid_and, (9,))], jobs=2)
    assert again == {"a": out["a"], "b": out["b"]}  # read back, not rerun
    one = StepRunner(tmp_path, log=lambda s: None).run_many([("d", _pid_and, (4,)), ("e", _pid_and, (5,))], jobs=1)
    assert one["d"]["pid"] == one["e"]["pid"] == os.getpid()


def test_run_many_names_the_failed_step_and_keeps_the_others(tmp_path):
    r = StepRunner(tmp_path, log=lambda s: None)
    with pytest.raises(RuntimeError, match="step b failed: ValueError"):
        r.run_many([("a", _fail_on, ("ok",)), ("b", _fail_on, ("bad",))], jobs=2)
    assert r.done("a") and not r.done("b")
    with pytest.raises(ValueError, match="jobs"):
        r.run_many([("a", _fail_on, ("ok",))], jobs=0)
    with pytest.raises(ValueError, match="step name"):
        r.run_many([("../a", _fail_on, ("ok",)), ("b", _fail_on, ("ok",))], jobs=2)


@pytest.mark.parametrize("name", ["", "../x", ".hidden"])
def test_step_runner_rejects_bad_names(tmp_path, name):
    with pytest.raises(ValueError, match="step name"):
        StepRunner(tmp_path, log=lambda s: None).run(name, lambda: 1)


def test_budgets_name_the_argument():
    with pytest.raises(ValueError, match="budget"):
        get_budget("huge")
    with pytest.raises(ValueError, match="methods"):
        get_budget("tiny").with_(methods=("GIM",))
    assert set(get_budget("paper").methods) == {"SIM", "GIM", "CPC", "supervised"}
    assert get_budget("paper").configs["SIM"][0] == "sim-paper"


# ---- measurements ------------------------------------------------------------------------------------------------

def _probe(v, s, rv, rs):
    mods = [{"module": "1", "vowel": 0.5, "syllable": 0.2, "random_init_vowel": 0.4, "random_init_syllable": 0.1},
            {"module": "2", "vowel": v, "syllable": s, "random_init_vowel": rv, "random_init_syllable": rs}]
    return {"modules": mods}


def _analysis(delta8, mass, width=512, probabilistic=True):
    d = {"ns": [1, 2, 4, 8, 16], "delta": [0.95, 0.9, 0.8, delta8, 0.0]}
    return {"modules": [{"module": "1", "width": width, "top10_mass": mass, "vowel_probe_test_accuracy": 0.9,
                         "delta": {"waveform": d, "mel": d}, "active_units": 3, "probabilistic": probabilistic}]}


def test_measurements_take_the_last_module_and_spread_over_training_seeds():
    b = get_budget("tiny")
    probes = {("SIM", 0, "paper"): _probe(0.9, 0.4, 0.3, 0.1), ("SIM", 1, "paper"): _probe(0.8, 0.5, 0.35, 0.12),
              ("GIM", 0, "paper"): _probe(0.95, 0.6, 0.3, 0.1), ("GIM", 1, "paper"): _probe(0.97, 0.55, 0.3, 0.1)}
    analyses = {("SIM", 0): _analysis(0.3, 0.5), ("SIM", 1): _analysis(0.2, 0.6),
                ("GIM", 0): _analysis(0.9, 0.2), ("GIM", 1): _analysis(0.95, 0.25)}
    m = measurements(b, 2, probes, analyses, "paper")
    assert m["table2"]["SIM"]["vowel"] == pytest.approx([90.0, 80.0])
    assert m["table2"]["random"]["syllable"] == pytest.approx([10.0, 12.0])   # SIM runs' own initialisations
    assert m["table3"][1]["SIM"] == pytest.approx([30.0, 20.0]) and m["table3"][1]["width"] == 512
    assert m["table3"][1]["n_dims"] == 8 and m["table3"][1]["paper_n"] == 8
    assert m["fig2"][1]["GIM"] == pytest.approx([0.2, 0.25])
    from sim_models.analysis.verdicts import all_verdicts
    status = {v.claim: v.status for v in all_verdicts(m)}
    assert status["Table 3, module 1: SIM's δ at few dims is well below GIM's and CPC's"] == "reproduced"


def test_measurements_take_delta_at_the_papers_fraction_of_the_width():
    b = get_budget("tiny")
    analyses = {("SIM", 0): _analysis(0.3, 0.5, width=48), ("GIM", 0): _analysis(0.9, 0.2, width=48)}
    row = measurements(b, 1, {}, analyses, "paper")["table3"][1]
    assert (row["n_dims"], row["width"], row["paper_n"]) == (1, 48, 8)      # 8 of 512 = 1/64 -> 1 of 48
    assert row["SIM"] == pytest.approx([95.0])
    from sim_models.analysis.verdicts import all_verdicts
    v = [v for v in all_verdicts({"table3": {1: row}})][0]
    assert "N = 1 of 48 (the paper's 8 of 512)" in v.measured and "N = 8 of 512" in v.paper


def test_measurements_skip_modules_that_are_not_probabilistic():
    b = get_budget("tiny")
    analyses = {("SIM", 0): _analysis(0.3, 0.5, probabilistic=False), ("GIM", 0): _analysis(0.9, 0.2)}
    m = measurements(b, 1, {}, analyses, "paper")
    assert m["table3"] == {} and m["fig2"] == {}


def test_cli_names_the_bad_argument(capsys):
    from sim_models.cli import main
    assert main(["reproduce", "--budget", "tiny", "--data", "x", "--out", "y", "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["reproduce", "--budget", "tiny", "--data", "x", "--out", "y", "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err


# ---- kill and rerun ----------------------------------------------------------------------------------------------

def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop(ENV_KILL_AFTER, None)
    env.update(extra)
    return env


def _cmd(data, out):
    return [sys.executable, "-c", MICRO, str(data), str(out)]


def _snapshot(out: Path) -> dict:
    """mtime_ns and bytes of every step result and checkpoint."""
    files = list((out / "steps").glob("*.json")) + list(out.rglob(CHECKPOINT_NAME)) + [out / "beta_search" / "sweep.json"]
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.read_bytes()) for p in files if p.is_file()}


@needs_espeak
def test_kill_after_a_step_then_mid_training_and_rerun_redoes_nothing(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    # 1. SIGKILL right after train_SIM_s0's result is written
    p = subprocess.run(_cmd(data, out), env=_env(**{ENV_KILL_AFTER: "train_SIM_s0"}), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    done1 = {f.stem for f in (out / "steps").glob("*.json")}
    assert done1 == {"data", "beta_search", "train_SIM_s0"}
    snap1 = _snapshot(out)

    # 2. SIGKILL in the middle of the next training run (train_SIM_s1): step 3 applied, its checkpoint not yet
    # written; the epoch-end checkpoint of step 2 is on disk
    marker = tmp_path / "paused"
    proc = subprocess.Popen(_cmd(data, out), env=_env(SIM_TEST_PAUSE_AT="step:3", SIM_TEST_PAUSE_MARKER=str(marker)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), proc.communicate()[0][-3000:] if proc.poll() is not None else "no pause within 300 s"
    proc.send_signal(signal.SIGKILL)
    log2 = proc.communicate()[0]
    assert "train_SIM_s0: done before" in log2 and "beta_search: done before" in log2
    ckpt = out / "runs" / "SIM_s1" / CHECKPOINT_NAME
    assert load_checkpoint(ckpt)["position"]["step"] == 2
    assert not (out / "steps" / "train_SIM_s1.json").exists()
    assert _snapshot(out).items() >= snap1.items()  # nothing finished was rewritten

    # 3. rerun to the end
    p = subprocess.run(_cmd(data, out), env=_env(), capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for name in sorted(done1):
        assert f"{name}: done before" in p.stdout
    after = _snapshot(out)
    for k, v in snap1.items():
        assert after[k] == v, f"{k} was rewritten by the rerun"
    s1 = json.loads((out / "steps" / "train_SIM_s1.json").read_text())["result"]
    assert s1["resumed"] is True and s1["steps"] == 4
    assert load_checkpoint(ckpt)["position"]["step"] == 4
    for f in ("report.md", "report.html"):
        assert (out / f).is_file()
    assert "Verdicts" in (out / "report.md").read_text()
    from sim_models.report.browser_check import check_page, find_chromium
    if find_chromium():  # the page as a reader sees it: no missing file, every player plays (test_report_html.py)
        page = check_page(out / "report.html", tmp_path / "shot.png")
        assert page["failed"] == [] and page["audio"], page["failed"]
        assert all((a["duration"] or 0) > 0 for a in page["audio"]), page["audio"]
        assert all(i["width"] > 0 for i in page["images"])
    # 4. a rerun of a finished reproduction runs nothing
    before = _snapshot(out)
    p = subprocess.run(_cmd(data, out), env=_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and "ran 0, skipped" in p.stdout, p.stdout[-2000:]
    assert _snapshot(out) == before


def test_the_beta_search_run_is_reused_only_with_an_identical_config(tmp_path):
    from sim_models.config import save_config
    from sim_models.experiments.reproduce.pipeline import _reuse_beta_run, run_config
    b = get_budget("tiny")
    cfg = run_config(b, "SIM", 0, 0.001)
    beta_dir = tmp_path / "beta_0.001"
    beta_dir.mkdir()
    save_config(cfg, beta_dir / "config.yaml")
    (beta_dir / CHECKPOINT_NAME).write_bytes(b"ckpt")
    other = run_config(b, "SIM", 1, 0.001)   # another seed: must train itself
    assert not _reuse_beta_run(other, beta_dir, tmp_path / "SIM_s1", log=lambda s: None)
    assert not (tmp_path / "SIM_s1").exists()
    assert _reuse_beta_run(cfg, beta_dir, tmp_path / "SIM_s0", log=lambda s: None)
    assert (tmp_path / "SIM_s0" / CHECKPOINT_NAME).read_bytes() == b"ckpt"


def test_report_html_renders_the_setting_paragraph_markup(tmp_path):
    """The setting paragraphs' bold and code are markup of each format (no literal asterisks in the HTML), and the
    data folder's name is escaped for it."""
    from sim_models.report.reproduce import _setting
    from sim_models.util.document import to_html, to_markdown

    beta = {"beta": 0.0, "note": "none chosen"}
    args = (get_budget("tiny"), 2, beta, {"protocol": "paper"}, 60.0, tmp_path / "<b>data")
    html = [to_html([p]).removeprefix("<p>").removesuffix("</p>") for p in _setting(*args)]
    assert html[0].startswith("Budget <code>tiny</code>: ") and "the <code>paper</code> protocol" in html[0]
    assert html[1].startswith("<b>β = 0</b>: ") and "*" not in "".join(html)
    assert html[2] == f"Data: <code>{tmp_path}/&lt;b&gt;data</code>."
    md = [to_markdown([p]).strip() for p in _setting(*args)]
    assert md[0].startswith("Budget `tiny`: ") and md[1].startswith("**β = 0**: ")
    assert md[2] == f"Data: `{tmp_path}/<b>data`."


def test_changed_measuring_settings_keep_trained_runs_and_redo_measured_steps(tmp_path):
    from sim_models.experiments.reproduce.pipeline import _check_settings, _settings
    from sim_models.util.atomic_write import atomic_write_json as atomic_json
    b = get_budget("tiny")
    data = tmp_path / "data"
    atomic_json(tmp_path / "reproduce.json", {"settings": _settings(b, data), "seeds": 2})
    for name in ("train_SIM_s0", "probe_SIM_s0_paper", "analyse_SIM_s0", "verdicts_n2", "report_n2"):
        atomic_json(tmp_path / "steps" / f"{name}.json", {"result": {}})
    _check_settings(tmp_path, _settings(b, data), log=lambda s: None)        # same settings: nothing removed
    assert len(list((tmp_path / "steps").glob("*.json"))) == 5
    logs = []
    _check_settings(tmp_path, _settings(b.with_(probe_seeds=3, report={"delta_utterances": 100}), data), logs.append)
    assert [p.stem for p in (tmp_path / "steps").glob("*.json")] == ["train_SIM_s0"] and "4 probe" in logs[0]
    with pytest.raises(ValueError, match="other settings"):
        _check_settings(tmp_path, _settings(b.with_(epochs={"SIM": 9, "GIM": 3}), data), log=lambda s: None)
    with pytest.raises(ValueError, match="other settings"):
        _check_settings(tmp_path, _settings(b, tmp_path / "other"), log=lambda s: None)


def test_measurements_on_the_robustness_representation():
    b = get_budget("tiny")

    def an(main, mean):
        a = _analysis(main, 0.5)
        d = {"ns": [1, 2, 4, 8, 16], "delta": [0.95, 0.9, 0.8, mean, 0.0]}
        a["modules"][0]["by_representation"] = {
            "sample": {"top10_mass": 0.5, "delta": a["modules"][0]["delta"]},
            "mean": {"top10_mass": 0.1, "delta": {"waveform": d, "mel": d}}}
        return a
    analyses = {("SIM", 0): an(0.3, 0.7), ("GIM", 0): an(0.9, 0.9)}
    main = measurements(b, 1, {}, analyses, "paper")
    mean = measurements(b, 1, {}, analyses, "paper", representation="mean")
    assert main["table3"][1]["SIM"] == pytest.approx([30.0]) and mean["table3"][1]["SIM"] == pytest.approx([70.0])
    assert mean["fig2"][1]["SIM"] == pytest.approx([0.1])
    from sim_models.experiments.reproduce.pipeline import _analysed_with
    assert _analysed_with(analyses, "mean") and not _analysed_with({("SIM", 0): _analysis(0.3, 0.5)}, "mean")


@needs_espeak
def test_two_jobs_train_the_same_runs_as_one_process(tmp_path):
    """--jobs 2: every step done, the report written, and a run trained in a worker equal to the same config
    trained here."""
    from sim_models.config import load_config
    from sim_models.training.launch import prepare_run
    data, out = tmp_path / "data", tmp_path / "out"
    p = subprocess.run(_cmd(data, out) + ["2"], env=_env(), capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "steps in 2 processes" in p.stdout and (out / "report.html").is_file()
    assert {"train_GIM_s1", "probe_GIM_s1_paper", "analyse_GIM_s0"} <= {f.stem for f in (out / "steps").glob("*.json")}
    run = out / "runs" / "GIM_s1"
    cfg = load_config(run / "config.yaml")
    prepare_run(cfg, data, tmp_path / "here", progress=False, tensorboard=False).fit()
    a, b = load_checkpoint(run / CHECKPOINT_NAME)["model"], load_checkpoint(tmp_path / "here" / CHECKPOINT_NAME)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=lambda s: f"{k}: {s}")
