"""`sim train` records its data folder (RUN/run_info.json); `sim eval --run R` and `sim report R` then work
without --data, and fail with a message naming --data when nothing is recorded or the folder is gone.
Everything goes through the real `sim` parser (sim_models.cli)."""
import json

import pytest

from sim_models.cli import build_parser, main
from sim_models.rundir.run_info import RUN_INFO_NAME, record_data_path, recorded_data_path, resolve_data

from tests.sim_models.analysis.test_analysis_run import LENGTH, make_toy_syllable_data

SHRINK = ["model.channels=[8,8,8,8,8]", "model.ar_hidden=8", "model.prediction_steps=3", "model.negative_samples=4",
          f"data.length={LENGTH}", "train.batch_size=4", "train.max_steps=2", "train.checkpoint_every=0"]
REPORT_SMALL = ["--decoder-epochs", "1", "--decoder-batch-size", "4", "--n-fft", "512", "--hop-length", "256",
                "--n-mels", "32", "--probe-epochs", "2", "--delta-utterances", "2", "--traversal-steps", "2",
                "--traversal-dims", "1", "--interpolation-steps", "2", "--tsne-max-points", "30",
                "--tsne-iterations", "250", "--audio-examples", "1"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runinfo")
    data = make_toy_syllable_data(root / "data", num_words=12)
    run = root / "run"
    assert main(["train", "--config", "tiny", "--data", str(data), "--out", str(run), "--no-progress", *SHRINK]) == 0
    return {"root": root, "data": data, "run": run}


def test_train_records_the_absolute_data_path(trained_run):
    info = json.loads((trained_run["run"] / RUN_INFO_NAME).read_text())
    assert info["data"] == str(trained_run["data"].resolve()) and info["recorded_by"] == "sim train"
    assert recorded_data_path(trained_run["run"]) == trained_run["data"].resolve()
    assert not list(trained_run["run"].glob("*.tmp"))


def test_parser_makes_data_optional():
    p = build_parser()
    assert p.parse_args(["eval", "--run", "R"]).data is None
    a = p.parse_args(["report", "R1", "R2"])
    assert a.data is None and a.runs == ["R1", "R2"]
    assert p.parse_args(["eval", "--run", "R", "--data", "D"]).data == "D"


def test_eval_and_report_use_the_recorded_data(trained_run, capsys):
    run = trained_run["run"]
    assert main(["eval", "--run", str(run), "--probe-epochs", "2"]) == 0
    assert json.loads((run / "eval.json").read_text())["data"] == str(trained_run["data"].resolve())
    assert main(["report", str(run), *REPORT_SMALL]) == 0
    summary = json.loads((run / "report" / "analysis.json").read_text())
    assert summary["data"] == str(trained_run["data"].resolve())
    assert (run / "report.html").is_file()


def test_missing_record_names_data(trained_run, tmp_path, capsys):
    import shutil
    run = tmp_path / "old_run"
    shutil.copytree(trained_run["run"], run)
    (run / RUN_INFO_NAME).unlink()  # a run trained before run_info.json existed
    for argv in (["eval", "--run", str(run)], ["report", str(run)]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--data" in err and "does not record the data" in err, err
    # an explicit --data still works
    assert main(["eval", "--run", str(run), "--data", str(trained_run["data"]), "--probe-epochs", "1"]) == 0


def test_recorded_folder_gone_names_data(trained_run, tmp_path, capsys):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(trained_run["data"], data)
    run = tmp_path / "run"
    shutil.copytree(trained_run["run"], run)
    record_data_path(run, data)
    assert resolve_data(run) == data.resolve()
    shutil.rmtree(data)
    for argv in (["eval", "--run", str(run)], ["report", str(run)]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--data" in err and "no longer exists" in err and str(data.resolve()) in err, err


def test_run_info_bad_input(tmp_path):
    with pytest.raises(ValueError, match="data"):
        record_data_path(tmp_path, "")
    (tmp_path / RUN_INFO_NAME).write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        resolve_data(tmp_path)
    record_data_path(tmp_path, tmp_path)  # a damaged file is replaced
    assert resolve_data(tmp_path) == tmp_path.resolve()
    assert resolve_data(tmp_path, "explicit") == type(tmp_path)("explicit")
