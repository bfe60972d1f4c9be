"""The probes, and `sim data` -> `sim train` -> `sim eval` end to end on a tiny data set."""
import json

import pytest
import torch

from sim_models.cli import main
from sim_models.evaluation.probes import segments_tensor, train_probe

from tests.sim_models.conftest import needs_espeak


def test_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(900) % 3  # 600 train -> 10 batches x 50 epochs = 500 Adam steps, as for ~640 syllables
    x = torch.randn(900, 5, generator=g) * 3e-5 + 1e-4 * torch.nn.functional.one_hot(y, 5).float()  # tiny scale
    r = train_probe(x[:600], y[:600], x[600:], y[600:], 3, epochs=50)
    assert r["test_accuracy"] > 0.9
    raw = train_probe(x[:600], y[:600], x[600:], y[600:], 3, epochs=50, standardize=False)
    assert raw["test_accuracy"] < 0.5  # why the probes standardise: Adam at 1e-3 cannot use 1e-4-scale features
    noise = train_probe(torch.randn(600, 5, generator=g), y[:600], torch.randn(300, 5, generator=g), y[600:], 3, epochs=50)
    assert noise["test_accuracy"] < 0.45  # the control: labels not in the features


def test_segments_are_zero_padded():
    segs = [(torch.ones(100), 0, 0), (torch.ones(250), 4, 1)]
    audio, syl, vow = segments_tensor(segs, multiple=160)
    assert audio.shape == (2, 320)
    assert audio[0, :100].eq(1).all() and audio[0, 100:].eq(0).all() and audio[1, 250:].eq(0).all()
    assert syl.tolist() == [0, 4] and vow.tolist() == [0, 1]
    with pytest.raises(ValueError, match="no syllable"):
        segments_tensor([])


@needs_espeak
def test_data_train_eval(tmp_path, syllable_data, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "tiny", "--data", str(syllable_data), "--out", str(run), "--epochs", "1",
                 "--no-progress", "model.channels=[8,8,8,8,8]", "model.ar_hidden=8", "train.batch_size=4"]) == 0
    for f in ("config.yaml", "checkpoint.pt", "metrics.csv"):
        assert (run / f).is_file()
    assert "model:\n" in (run / "config.yaml").read_text()
    # --resume with more epochs continues from the checkpoint
    assert main(["train", "--config", "tiny", "--data", str(syllable_data), "--out", str(run), "--epochs", "2",
                 "--resume", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 this run" in out  # 10 training words / batch 4 = 2 steps per epoch
    assert main(["eval", "--run", str(run), "--data", str(syllable_data), "--probe-epochs", "5",
                 "--protocol", "paper", "--seeds", "2"]) == 0
    table = capsys.readouterr().out
    assert "| module | vowel | vowel, random init | syllable | syllable, random init |" in table
    assert "3 (GRU) (Table 2 row)" in table and " ± " in table and "share their syllable sequence" in table
    result = json.loads((run / "eval_paper.json").read_text())
    assert result == json.loads((run / "eval.json").read_text())
    assert [m["module"] for m in result["modules"]] == ["1 (conv)", "2 (conv)", "3 (GRU)"]
    assert result["steps"] == 4 and result["seeds"] == 2 and result["protocol"]["name"] == "paper"
    assert result["protocol"]["epochs"] == 5 and result["protocol"]["standardize"] is False
    assert result["word_overlap"]["test_words"] == 2
    for m in result["modules"]:
        for k in ("vowel", "syllable", "random_init_vowel", "random_init_syllable"):
            assert 0.0 <= m[k] <= 1.0 and len(m[k + "_runs"]) == 2
    assert (run / "eval.md").read_text().startswith("Linear probes")
    from sim_models.evaluation.evaluate import evaluate_run
    direct = evaluate_run(run, syllable_data, protocol="paper", seeds=1, epochs=1)   # the paper's default: samples
    assert direct["representation"] == "sample" and direct["sample_draws"] is None
    assert evaluate_run(run, syllable_data, protocol="robust", seeds=1, epochs=1)["representation"] == "mean"
    assert main(["eval", "--run", str(run), "--data", str(syllable_data), "--probe-epochs", "1",
                 "--protocol", "thesis", "--seeds", "1", "--representation", "sample"]) == 0
    result = json.loads((run / "eval_thesis.json").read_text())
    assert result["representation"] == "sample" and result["modules"][0]["vowel"] is None
    assert 0.0 <= result["modules"][0]["syllable"] <= 1.0


@needs_espeak
def test_sim_data_command(tmp_path, capsys):
    assert main(["data", "--out", str(tmp_path / "d"), "--words", "5", "--seed", "1"]) == 0
    assert "wrote 5 words (4 train / 1 test)" in capsys.readouterr().out
    assert len(list((tmp_path / "d" / "audio").glob("*.wav"))) == 5


def test_train_rejects_bad_override(tmp_path):
    with pytest.raises(ValueError, match="no key 'bogus'"):
        main(["train", "--config", "tiny", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "model.bogus=1"])
