"""Progress output (sim_models/util/progress.py): a bar on a terminal; elsewhere one plain line per pass with the
numbers the bar shows, and never a carriage return, so a captured log reads line by line."""
import io
import sys

import pytest

from sim_models.data.datasets import SyllableDataset
from sim_models.util.progress import Progress, is_terminal
from sim_models.rundir.logs import read_metrics
from sim_models.training.trainer import Trainer

from tests.sim_models.analysis.test_analysis_run import LENGTH, SR, make_toy_syllable_data, tiny_config


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def test_is_terminal():
    assert is_terminal(FakeTerminal()) and not is_terminal(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed) and not is_terminal(object())


def test_off_a_terminal_one_line_per_pass():
    stream = io.StringIO()
    with Progress(3, "epoch 1/2", stream=stream) as p:
        for _ in range(3):
            p.update()
            p.set_postfix_str("m0 L=1.234 acc=0.50")
        assert stream.getvalue() == ""          # nothing while the pass runs
    text = stream.getvalue()
    assert "\r" not in text and text.count("\n") == 1
    assert text.startswith("epoch 1/2: 3/3 batches in ") and text.endswith(" s, m0 L=1.234 acc=0.50\n")


def test_on_a_terminal_a_bar():
    stream = FakeTerminal()
    p = Progress(3, "epoch 1/2", stream=stream)
    p.update(2)
    p.set_postfix_str("m0 L=1.234")
    p.close()
    text = stream.getvalue()
    assert "\r" in text and "epoch 1/2" in text and "2/3" in text and "L=1.234" in text
    assert "batches in" not in text             # the bar, not the plain line


@pytest.mark.parametrize("stream", [io.StringIO(), FakeTerminal()], ids=["file", "terminal"])
def test_disabled_writes_nothing(stream):
    with Progress(3, "epoch 1/2", enabled=False, stream=stream) as p:
        p.update(3)
    assert stream.getvalue() == ""


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return make_toy_syllable_data(tmp_path_factory.mktemp("progress") / "data")


def _train(data, run_dir, progress=True):
    cfg = tiny_config()
    cfg.train.max_steps = None       # 2 whole epochs of 3 batches (12 training words, batch 4)
    cfg.train.validate = False
    Trainer(cfg, SyllableDataset(data, "train", SR, LENGTH), run_dir, progress=progress, tensorboard=False).fit()


def test_training_logged_to_a_file_has_one_line_per_epoch_with_the_numbers(toy_data, tmp_path, capsys):
    _train(toy_data, tmp_path / "run")
    err = capsys.readouterr().err            # captured: not a terminal
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    rows = read_metrics(tmp_path / "run")
    for epoch, line in enumerate(lines):
        assert "3/3 batches in" in line
        last_step = max(r["step"] for r in rows if r["epoch"] == epoch)
        for r in (r for r in rows if r["step"] == last_step):   # the numbers of the epoch's last logged step
            assert (f"m{r['module']} L={r['loss']:.3f} nce={r['nce']:.3f} kl={r['kl']:.3f} "
                    f"acc={r['accuracy']:.2f}") in line


def test_training_on_a_terminal_draws_a_bar(toy_data, tmp_path, monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _train(toy_data, tmp_path / "run")
    text = terminal.getvalue()
    assert "\r" in text and "epoch 2/2" in text and "batches in" not in text


def test_no_progress_writes_nothing(toy_data, tmp_path, capsys, monkeypatch):
    _train(toy_data, tmp_path / "quiet", progress=False)
    assert "epoch" not in capsys.readouterr().err
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _train(toy_data, tmp_path / "quiet-terminal", progress=False)
    assert terminal.getvalue() == ""
