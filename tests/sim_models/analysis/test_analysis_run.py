"""The analysis toolkit on a tiny *trained* run: every analysis runs and writes its files, δ's
properties hold on trained decoders, traversal shapes, and `sim report` for one and two runs.

Data: a toy syllable data set in the `sim data` layout (metadata.json + 16-bit wavs), made here from
formant-like tones (vowel = two sinusoids at /a/, /i/, /u/-like formants, consonant = a short filtered
noise burst), so the test needs neither espeak-ng nor time to synthesise. Model: the CPC/GIM layout at
8 channels, 2 conv modules + GRU, 3200-sample clips (160 | 20 frames), trained for 6 steps.
"""
import argparse
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from sim_models.config.legacy import upgrade_model_section
from sim_models.analysis.decoder_training import LogMel, load_decoders, save_decoders, train_decoders
from sim_models.analysis.decoders import DecoderConfig
from sim_models.analysis.entanglement import entanglement_delta, swap_dims
from sim_models.analysis.representations import encode_frames
from sim_models.rundir.load import load_run
from sim_models.analysis.traversal import TRAVERSAL_RANGE, latent_traversal, plot_traversal, zero_start
from sim_models.config import Config, DataConfig, ModelConfig, TrainConfig
from sim_models.data.datasets import SyllableDataset
from sim_models.training.trainer import Trainer

LENGTH, SR = 3200, 16000
FORMANTS = {"a": (700, 1200), "i": (300, 2300), "u": (320, 800)}
TEST_DCFG = DecoderConfig(loss="mse+mel", n_fft=512, hop_length=256, n_mels=32, epochs=3, batch_size=4, lr=3e-3)


def make_toy_syllable_data(root, num_words=16, seed=0):
    """A `sim data`-layout folder of synthetic three-syllable words (see module docstring)."""
    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True)
    syllables = [c + v for c in "bdg" for v in "aiu"]
    items = []
    for i in range(num_words):
        syl = [syllables[j] for j in rng.integers(0, 9, size=3)]
        wav, bounds, t = np.zeros(LENGTH, np.float32), [], 80
        f0 = rng.uniform(100, 160)
        for s in syl:
            n_cons, n_vow = 120, int(rng.integers(700, 900))
            burst = rng.normal(0, 0.3, n_cons) * np.hanning(n_cons)
            burst = np.convolve(burst, np.ones(1 + "bdg".index(s[0]) * 3) / (1 + "bdg".index(s[0]) * 3), "same")
            tt = np.arange(n_vow) / SR
            f1, f2 = FORMANTS[s[1]]
            vow = (0.4 * np.sin(2 * np.pi * f1 * tt) + 0.25 * np.sin(2 * np.pi * f2 * tt)) * (0.6 + 0.4 * np.sin(2 * np.pi * f0 * tt))
            seg = np.concatenate([burst, vow * np.hanning(n_vow)]).astype(np.float32)
            end = min(t + len(seg), LENGTH)
            wav[t:end] = seg[:end - t]
            bounds.append([t, end])
            t = end
        name = f"audio/{i:05d}.wav"
        sf.write(root / name, wav, SR, subtype="PCM_16")
        items.append({"file": name, "word": "-".join(syl), "syllables": syl, "boundaries": bounds, "voice": "toy",
                      "rate": 0, "pitch": 0, "stress": 0, "split": "test" if i % 4 == 0 else "train"})
    meta = {"sample_rate": SR, "length": LENGTH, "seed": seed, "syllables": syllables, "vowels": list("aiu"), "items": items}
    (root / "metadata.json").write_text(json.dumps(meta))
    return root


def tiny_config(beta=0.01, probabilistic=True, seed=0):
    flat = upgrade_model_section({"channels": [8] * 5, "modules": [[0, 1], [2, 3, 4]], "maxpool": [0, 0]})
    m = ModelConfig(**flat, ar_hidden=8, prediction_steps=3, negative_samples=4, beta=beta, probabilistic=probabilistic)
    t = TrainConfig(lr=2e-3, batch_size=4, epochs=2, max_steps=4, checkpoint_every=0, log_every=3, seed=seed)
    return Config("tiny-test", m, t, DataConfig(sample_rate=SR, length=LENGTH))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    data = make_toy_syllable_data(root / "data")
    runs = {}
    for name, cfg in (("sim", tiny_config()), ("gim", tiny_config(beta=0.0, probabilistic=False))):
        ds = SyllableDataset(data, "train", SR, LENGTH)
        Trainer(cfg, ds, root / name, progress=False, tensorboard=False).fit()
        runs[name] = root / name
    return {"root": root, "data": data, "runs": runs}


@pytest.fixture(scope="module")
def trained(toy):
    run = load_run(toy["runs"]["sim"])
    audio = SyllableDataset(toy["data"], "train", SR, LENGTH).audio
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    decoders, history = train_decoders(run.model, audio, TEST_DCFG, SR)
    after = run.model.state_dict()
    for k, v in before.items():  # the encoder is frozen: decoder training leaves it bit for bit unchanged
        torch.testing.assert_close(after[k], v, rtol=0, atol=0)
    test_audio = SyllableDataset(toy["data"], "test", SR, LENGTH).audio
    return {"run": run, "decoders": decoders, "history": history, "test_audio": test_audio}


def test_decoders_train_and_reload(trained, tmp_path):
    run, decoders, hist = trained["run"], trained["decoders"], trained["history"]
    assert len(decoders) == run.model.num_stages == 3
    assert len(hist["loss"]) == TEST_DCFG.epochs and all(math.isfinite(v) for row in hist["loss"] for v in row)
    # trained decoders beat their untrained selves on the training loss
    first, last = hist["loss"][0], hist["loss"][-1]
    assert sum(last) < sum(first), hist["loss"]
    path = save_decoders(tmp_path / "d.pt", decoders, TEST_DCFG, LENGTH, SR, run.steps, hist)
    again, dcfg, meta = load_decoders(path, run.cfg.model)
    assert dcfg == TEST_DCFG and meta["length"] == LENGTH
    z = encode_frames(run.model, trained["test_audio"][:2], 1)
    torch.testing.assert_close(again[1](z), decoders[1](z))


@pytest.mark.parametrize("stage", [0, 1, 2], ids=["module1", "module2", "gru"])
@pytest.mark.parametrize("start", ["zero", "utterance"])
def test_traversal_shapes_and_values(trained, stage, start, tmp_path):
    run, dec = trained["run"], trained["decoders"][stage]
    lat = encode_frames(run.model, trained["test_audio"][:1], stage)[0]      # (T, C)
    t_frames, c = lat.shape
    assert (t_frames, c) == ((160, 8) if stage == 0 else (20, 8))
    z0 = zero_start(run.cfg.model, stage, LENGTH, c) if start == "zero" else lat
    assert z0.shape == (t_frames, c)
    res = latent_traversal(dec, z0, dim=3, steps=5, sample_rate=SR)
    assert res["values"].shape == (5,)
    assert res["latents"].shape == (5, t_frames, c)
    assert res["waveforms"].shape == (5, LENGTH)
    assert res["spectra"].shape == (5, LENGTH // 2 + 1) and res["freqs"].shape == (LENGTH // 2 + 1,)
    torch.testing.assert_close(res["values"], torch.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, 5))
    torch.testing.assert_close(res["latents"][:, :, 3], res["values"][:, None].expand(5, t_frames))
    others = [d for d in range(c) if d != 3]
    torch.testing.assert_close(res["latents"][:, :, others], z0[None, :, others].expand(5, -1, -1))
    # step i decodes exactly its latent
    torch.testing.assert_close(res["waveforms"][2:3], dec(res["latents"][2:3]))
    png = plot_traversal(res, tmp_path / "t.png", sample_rate=SR)
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("stage", [0, 1, 2], ids=["module1", "module2", "gru"])
@pytest.mark.parametrize("space", ["waveform", "mel"])
def test_delta_on_trained_decoders(trained, stage, space):
    run, dec = trained["run"], trained["decoders"][stage]
    lat = encode_frames(run.model, trained["test_audio"][:4], stage)
    logmel = LogMel.from_config(TEST_DCFG, SR)
    r = entanglement_delta(dec, lat, ns=(1, 2, 4, 8), space=space, logmel=logmel)
    assert r["ns"] == [1, 2, 4, 8] and r["pairs"] == 12
    assert all(0.0 <= d <= 1.0 for d in r["delta"]), r
    assert r["delta"][-1] == 0.0 and r["delta_unclipped"][-1] == 0.0  # all dims swapped: z_swap = z_b exactly
    assert r["delta"][0] > 0.0 and r["mean_pair_distance"] > 0
    # all swapped = z_b exactly, dim for dim
    torch.testing.assert_close(swap_dims(lat[:1], lat[1:2], lat.shape[2]), lat[1:2], rtol=0, atol=0)


def _report_args(runs, data, out=None, **kw):
    from sim_models.cli.report import add_parser as add_report_parser
    p = argparse.ArgumentParser()
    add_report_parser(p.add_subparsers(dest="command"))
    argv = ["report", *map(str, runs), "--data", str(data), "--decoder-epochs", "2", "--decoder-batch-size", "4",
            "--n-fft", "512", "--hop-length", "256", "--n-mels", "32", "--probe-epochs", "5", "--delta-utterances", "3",
            "--traversal-steps", "3", "--traversal-dims", "1", "--interpolation-steps", "3", "--tsne-max-points", "60",
            "--tsne-iterations", "250", "--few-label-sizes", "1", "2", "--few-label-seeds", "2", "--few-label-epochs", "2",
            "--activation-utterances", "3", *kw.get("extra", ())]
    if out:
        argv += ["--out", str(out)]
    return p.parse_args(argv)


def test_report_one_run_writes_every_file(toy, capsys):
    run_dir = toy["runs"]["sim"]
    args = _report_args([run_dir], toy["data"])
    assert args.func(args) == 0
    md = (run_dir / "report.md").read_text()
    for section in ("## Decoders", "## Latent traversal", "## Interpolation", "## Entanglement δ", "## Vowel concentration",
                    "## t-SNE", "## Training and validation loss", "## Activation distributions", "## Posterior usage",
                    "## Few-label generalisation"):
        assert section in md
    assert "Side by side" not in md
    rep = run_dir / "report"
    expected = ["decoders.pt", "analysis.json", "entanglement.json", "entanglement.png", "concentration.png", "tsne.png",
                "loss_curves.png", "activations.png", "active_units.png", "few_labels.png"]
    for m in (1, 2, 3):
        expected += [f"interpolation_m{m}.png", f"interpolation_m{m}.wav"]
    for name in expected:
        assert (rep / name).is_file(), name
    assert len(list(rep.glob("traversal_m*_dim*_zero.png"))) == 3 and len(list(rep.glob("traversal_m*_utterance.png"))) == 3
    (rep / "traversal_m1_dim99_zero.png").write_bytes(b"stale")  # the next report removes traversals it did not make
    # every image the markdown links to exists
    import re
    links = re.findall(r"\]\(([^)]+\.(?:png|wav))\)", md)
    assert len(links) >= 12 and all((run_dir / link).is_file() for link in links)
    wav, sr = sf.read(rep / "interpolation_m1.wav")
    assert sr == SR and wav.shape[0] == 3 * LENGTH + 2 * int(0.15 * SR)
    ent = json.loads((rep / "entanglement.json").read_text())
    assert len(ent["modules"]) == 6   # three modules, sample (primary) and mean (robustness row, "(mean)")
    for key, mod in ent["modules"].items():
        for space in ("waveform", "mel"):
            # Table 3's Ns that fit C = 8, plus the paper's 1/64 and 1/8 of the width (1 and 1 at C = 8)
            assert mod[space]["ns"] == [1, 2, 4, 8]
            if key.endswith("(mean)") and mod[space]["mean_pair_distance"] == 0:
                continue   # the sample-trained decoder maps this 4-step model's mu of every utterance to one output
            assert all(0 <= d <= 1 for d in mod[space]["delta"]) and mod[space]["delta"][-1] == 0.0
    summary = json.loads((rep / "analysis.json").read_text())
    assert [m["module"] for m in summary["modules"]] == ["module 1 (conv)", "module 2 (conv)", "module 3 (GRU)"]
    assert "training 3 decoders" in capsys.readouterr().out
    assert summary["representation"] == "sample" and summary["representations"] == ["sample", "mean"]
    for m in summary["modules"]:   # the primary (sample) row under the old keys, both rows under by_representation
        assert m["representation"] == "sample" and set(m["by_representation"]) == {"sample", "mean"}
        assert m["concentration"] == m["by_representation"]["sample"]["concentration"]
        assert m["entanglement"] == m["by_representation"]["sample"]["entanglement"]
        assert m["by_representation"]["mean"]["concentration"]["representation"] == "mean"
        assert not m["sample_equals_mean"]   # the GRU reads module 2's samples
        for key in ("top10_mass", "scaled_top10_mass", "test_accuracy", "kde", "signed_minmax"):
            assert key in m["concentration"]
        assert m["entanglement"]["waveform"]["paper_fraction"]["1/8"]["n"] == 1
    assert summary["delta"]["utterances"] == 3 and summary["delta"]["pairs"] == 6
    assert summary["delta"]["n_at_paper_fraction"]["module 1 (conv)"] == {"1/64": 1, "1/8": 1, "width": 8}
    assert len(summary["decoders"]["final_loss"]) == 3 and summary["decoders"]["representation"] == "sample"
    assert (rep / "concentration_kde.png").is_file()
    th = summary["thesis"]
    assert th["few_labels"]["sizes"] == [1, 2] and len(th["few_labels"]["modules"]) == 3
    assert [u["probabilistic"] for u in th["active_units"]] == [True, True, False]
    assert set(th["loss_curves"]) == {"0", "1", "2"}


def test_report_two_runs_side_by_side(toy, tmp_path, capsys):
    runs = [toy["runs"]["sim"], toy["runs"]["gim"]]
    args = _report_args(runs, toy["data"], out=tmp_path / "cmp" / "compare.md")
    had_decoders = (runs[0] / "report" / "decoders.pt").exists()  # after test_report_one_run_writes_every_file
    capsys.readouterr()
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    # same checkpoint, same settings: the sim run's decoders are reused, the gim run's trained
    assert printed.count("reusing decoders") == (1 if had_decoders else 0)
    assert printed.count("training 3 decoders") == (1 if had_decoders else 2)
    assert not (runs[0] / "report" / "traversal_m1_dim99_zero.png").exists() or not had_decoders
    for run_dir in runs:
        md = (run_dir / "report.md").read_text()
        assert "## Side by side: `sim`, `gim`" in md
        assert "sim: module 1 (conv)" in md and "gim: module 3 (GRU)" in md
    cmp_md = (tmp_path / "cmp" / "compare.md").read_text()
    import re
    links = re.findall(r"\]\(([^)]+\.png)\)", cmp_md)
    assert len(links) == 2 * (7 + 3) and all((tmp_path / "cmp" / link).resolve().is_file() for link in links)


def test_report_rejects_a_folder_that_is_not_a_run(toy, tmp_path):
    args = _report_args([tmp_path], toy["data"])
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        args.func(args)


def test_report_on_espeak_syllable_data(syllable_data, tmp_path):
    """The real `sim data` format (espeak-ng, 10240-sample clips; skips when espeak-ng is missing)."""
    cfg = tiny_config()
    cfg.data = DataConfig(sample_rate=SR, length=10240)
    ds = SyllableDataset(syllable_data, "train", SR, 10240)
    Trainer(cfg, ds, tmp_path / "run", progress=False, tensorboard=False).fit()
    args = _report_args([tmp_path / "run"], syllable_data, extra=["--tsne-settings", "thesis"])
    assert args.func(args) == 0
    summary = json.loads((tmp_path / "run" / "report" / "analysis.json").read_text())
    assert summary["n_test_syllables"] > 0 and len(summary["modules"]) == 3
    for m in summary["modules"]:
        assert m["frames"] == (512 if m["stage"] == 0 else 64)
        assert 0.0 <= m["concentration"]["test_accuracy"] <= 1.0
        assert m["entanglement"]["waveform"]["delta"][-1] == 0.0
    wav, sr = sf.read(tmp_path / "run" / "report" / "interpolation_m2.wav")
    assert sr == SR and wav.shape[0] == 3 * 10240 + 2 * int(0.15 * SR)


def test_a_new_analysis_is_one_file_and_one_registration(toy, tmp_path):
    """A toy analysis, written as a module would be (``compute`` + ``section``) and registered with one call:
    `sim report` computes it, stores its numbers in analysis.json and renders its section to both pages."""
    import shutil

    from sim_models.analysis.registry import register_analysis, unregister_analysis
    from sim_models.util.document import Heading, Paragraph, Table

    def compute(ctx):   # the toy's "file": its numbers (and files) from the loaded run and the test audio
        return {"toy_loudness": {"mean_abs": float(ctx.test_audio.abs().mean()), "utterances": len(ctx.test_audio)}}

    def section(res, names, rc):
        t = res["toy_loudness"]
        return [Heading("Toy loudness"), Paragraph(f"Mean |x| over {t['utterances']} test utterances."),
                Table(("quantity", "value"), (("mean |x|", f"{t['mean_abs']:.4f}"),))]

    run_dir = tmp_path / "run <copy>"
    shutil.copytree(toy["runs"]["sim"], run_dir)
    register_analysis("toy_loudness", compute, section)
    try:
        args = _report_args([run_dir], toy["data"])
        assert args.func(args) == 0
    finally:
        unregister_analysis("toy_loudness")
    summary = json.loads((run_dir / "report" / "analysis.json").read_text())
    value = summary["thesis"]["toy_loudness"]["mean_abs"]
    assert value > 0
    md, page = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    assert "## Toy loudness" in md and f"| mean \\|x\\| | {value:.4f} |" in md
    assert "<h2>Toy loudness</h2>" in page and f"<td class=l>mean |x|</td><td>{value:.4f}</td>" in page
    assert md.index("## Few-label generalisation") < md.index("## Toy loudness")  # after the ones registered before
