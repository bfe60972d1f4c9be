"""The thesis' analyses: metrics reader (both validation shapes), loss curves, activations, active units,
few-label probes, t-SNE with the thesis' settings."""
import csv
import json

import numpy as np
import pytest
import torch

from sim_models.analysis.active_units import active_units
from sim_models.analysis.activations import activation_values, plot_activations
from sim_models.analysis.few_labels import few_label_curve, few_label_indices, plot_few_labels
from sim_models.analysis.loss_curves import epoch_curves, plot_loss_curves
from sim_models.analysis.posterior_usage import plot_active_units, posterior_usage, section as active_units_section
from sim_models.analysis.thesis_analyses import thesis_features
from sim_models.data.datasets import SyllableDataset
from sim_models.model.greedy import build_model
from sim_models.rundir.logs import read_metric_rows

from tests.sim_models.conftest import small_config

FIELDS = ("step", "unit", "epoch", "module", "loss", "nce", "kl", "accuracy", "lr")


def _rows():
    """Two modules, two epochs, two logged steps each: loss = 10 * epoch + module + step / 100."""
    rows = []
    for e in range(2):
        for k in range(2):
            step = 2 * e + k
            for m in range(2):
                rows.append({"step": step, "unit": m, "epoch": e, "module": m, "loss": 10.0 * e + m + step / 100,
                             "nce": 1.0, "kl": 0.1, "accuracy": 0.5, "lr": 1e-3})
    return rows


def _check_train(curves):
    assert sorted(curves) == [0, 1]
    assert [e for e, _ in curves[1]["train"]] == [0, 1]
    assert curves[1]["train"][0][1] == pytest.approx(1.005) and curves[0]["train"][1][1] == pytest.approx(10.025)


def test_metrics_today_shape_jsonl(tmp_path):
    with open(tmp_path / "metrics.jsonl", "w") as f:
        for r in _rows():
            f.write(json.dumps(r) + "\n")
        f.write('{"step": 9, "epo')  # a line cut by a crash
    curves = epoch_curves(read_metric_rows(tmp_path))
    _check_train(curves)
    assert curves[0]["val"] == []


def test_metrics_val_rows_with_split_field(tmp_path):
    rows = [dict(r, split="train") for r in _rows()]
    rows += [{"step": 2 * e + 1, "unit": m, "epoch": e, "module": m, "loss": 5.0 + e + m, "nce": None, "kl": None,
              "accuracy": None, "lr": None, "split": "val"} for e in range(2) for m in range(2)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    curves = epoch_curves(read_metric_rows(tmp_path))
    _check_train(curves)  # val rows do not leak into the training curve
    assert curves[1]["val"] == [(0, 6.0), (1, 7.0)]


def test_metrics_val_loss_column_csv(tmp_path):
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS + ("val_loss",))
        w.writeheader()
        for r in _rows():
            last = r["step"] % 2 == 1
            w.writerow(dict(r, val_loss=(3.0 + r["epoch"] + r["module"]) if last else ""))
    curves = epoch_curves(read_metric_rows(tmp_path))
    _check_train(curves)
    assert curves[0]["val"] == [(0, 3.0), (1, 4.0)]
    png = plot_loss_curves(curves, tmp_path / "loss_curves.png", ["module 1", "module 2"])
    assert png.stat().st_size > 5000
    with pytest.raises(FileNotFoundError, match="metrics"):
        read_metric_rows(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="curves"):
        plot_loss_curves({}, tmp_path / "x.png")


def _model(*extra):
    return build_model(small_config("tiny", "model.channels=[8,8,8,8,8]", "model.ar_hidden=8", *extra))


def test_activations_shapes_and_modes(tmp_path):
    model = _model()
    audio = torch.randn(2, 3200, generator=torch.Generator().manual_seed(0)) * 0.1
    vals = activation_values(model, audio, dims=6, representation="mean")
    assert [tuple(v.shape) for v in vals] == [(2 * 160, 6), (2 * 20, 6), (2 * 20, 6)]
    model.eval()
    torch.testing.assert_close(vals[0], model.encode(audio)[0].mu[..., :6].reshape(-1, 6))
    samples = activation_values(model, audio, representation="sample")
    assert not model.training and not torch.allclose(samples[0], vals[0])
    assert plot_activations(vals, tmp_path / "a.png", probabilistic=[True, True, False]).stat().st_size > 5000
    with pytest.raises(ValueError, match="representation"):
        activation_values(model, audio, representation="mu")


def test_posterior_usage_counts_active_units_and_collapse(tmp_path):
    model = _model()
    audio = torch.randn(3, 3200, generator=torch.Generator().manual_seed(1)) * 0.1
    usage = posterior_usage(model, audio)
    assert [u["probabilistic"] for u in usage] == [True, True, False] and usage[2]["kl_per_dim"] is None
    model.eval()
    o = model.encode(audio)[1]
    assert usage[1]["active_kl"] == active_units(o.mu, o.logvar, "kl")
    assert usage[1]["active_variance"] == active_units(o.mu, o.logvar, "variance")
    torch.testing.assert_close(torch.tensor(usage[1]["kl_per_dim"]).sum(), torch.tensor(usage[1]["kl_total"]),
                               check_dtype=False)
    # collapse module 1: mu = 0, logvar = 0 everywhere -> KL 0 -> no active unit
    st = model.stages[0]
    with torch.no_grad():
        for head in (st.mu_head, st.logvar_head):
            head.weight.zero_()
            head.bias.zero_()
    collapsed = posterior_usage(model, audio)
    assert collapsed[0]["active_kl"] == 0 and collapsed[0]["kl_total"] == 0.0
    assert usage[0]["active_kl"] > 0  # tiny's logvar bias -4 is far from the prior
    from sim_models.util.document import to_markdown
    blocks = active_units_section({"active_units": collapsed, "files": {"active_units_png": "au.png"}}, ["m1", "m2", "m3"], {})
    table = to_markdown(blocks)
    assert "| m1 | 8 | 0 |" in table and "deterministic" in table
    assert plot_active_units(usage, tmp_path / "au.png").stat().st_size > 5000


def test_few_label_indices():
    y = torch.tensor([0] * 10 + [1] * 3 + [2] * 6)
    idx = few_label_indices(y, 4, seed=0)
    assert torch.bincount(y[idx]).tolist() == [4, 3, 4]
    assert torch.equal(idx, few_label_indices(y, 4, seed=0)) and not torch.equal(idx, few_label_indices(y, 4, seed=1))
    with pytest.raises(ValueError, match="n must"):
        few_label_indices(y, 0, 0)


def test_few_label_curve_rises_with_labels(tmp_path):
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(9, 20, generator=g) * 3.0
    ytr, yte = torch.arange(900) % 9, torch.arange(270) % 9
    xtr = centres[ytr] + torch.randn(900, 20, generator=g) * 1.2
    xte = centres[yte] + torch.randn(270, 20, generator=g) * 1.2
    res = few_label_curve([xtr], ytr, [xte], yte, sizes=(1, 64), seeds=3, epochs=100)
    assert res["labelled"] == [9, 576] and len(res["modules"][0]["runs"][0]) == 3
    lo, hi = res["modules"][0]["mean"]
    assert hi > lo + 0.08 and hi > 0.7, res["modules"][0]  # 100 Adam steps (thesis): seed 0 stays low
    assert plot_few_labels(res, tmp_path / "fl.png", ["m1"]).stat().st_size > 5000
    with pytest.raises(ValueError, match="seeds"):
        few_label_curve([xtr], ytr, [xte], yte, seeds=0)


def test_few_label_run_on_tiny_espeak_data(syllable_data):
    model = _model()
    tr, te = SyllableDataset(syllable_data, "train"), SyllableDataset(syllable_data, "test")
    f_tr, y_tr, f_te, y_te = thesis_features(model, tr.syllable_segments(), te.syllable_segments())
    assert f_tr[1].shape[1] == 8 * (8800 // 160)  # flattened C x T of 8800-sample syllables
    res = few_label_curve(f_tr, y_tr["syllable"], f_te, y_te["syllable"], sizes=(1, 2), seeds=2, epochs=3)
    assert len(res["modules"]) == 3
    for m in res["modules"]:
        assert all(0.0 <= a <= 1.0 for a in m["mean"])


def test_tsne_thesis_settings(monkeypatch):
    import sklearn.manifold
    from sim_models.analysis import tsne

    seen = {}

    class Fake:
        def __init__(self, **kw):
            seen.update(kw)

        def fit_transform(self, x):
            return np.zeros((x.shape[0], 2))

    monkeypatch.setattr(sklearn.manifold, "TSNE", Fake)
    with pytest.warns(UserWarning, match="max_iter=300 is ignored"):
        emb, kept = tsne.tsne_embedding(torch.randn(200, 5), settings="thesis", max_iter=300)
    assert (seen["init"], seen["perplexity"], seen["learning_rate"], seen["max_iter"]) == ("random", 30.0, 200.0, 1000)
    tsne.tsne_embedding(torch.randn(200, 5), settings="ours", max_iter=300)
    assert (seen["init"], seen["learning_rate"], seen["max_iter"]) == ("pca", "auto", 300)
    with pytest.raises(ValueError, match="settings"):
        tsne.tsne_embedding(torch.randn(20, 5), settings="paper")


def test_loss_curves_read_the_trainers_validation_rows(syllable_data, tmp_path):
    """The trainer's own log (validation = the test split at each epoch end) gives both curves per module."""
    from sim_models.training.trainer import Trainer
    cfg = small_config("tiny", "model.channels=[8,8,8,8,8]", "model.ar_hidden=8", "train.batch_size=4",
                       "train.epochs=2", "train.log_every=1")
    tr, te = SyllableDataset(syllable_data, "train"), SyllableDataset(syllable_data, "test")
    Trainer(cfg, tr, tmp_path / "run", progress=False, tensorboard=False, val_dataset=te).fit()
    curves = epoch_curves(read_metric_rows(tmp_path / "run"))
    assert sorted(curves) == [0, 1, 2]
    for c in curves.values():
        assert [e for e, _ in c["train"]] == [0, 1] and [e for e, _ in c["val"]] == [0, 1]


def test_the_analyses_read_the_logs_with_run_logs_reader(tmp_path):
    """The analyses read the logs with rundir.logs.read_metric_rows (one module reads the logs); on the trainer's
    own log it gives the rows of the typed reader, numbers as floats."""
    from sim_models.rundir import logs as run_log
    log = run_log.RunLogger(tmp_path, tensorboard=False)
    for r in _rows():
        log.log(dict(r, split="train"))
    log.log({"step": 4, "unit": 0, "epoch": 1, "module": 0, "loss": 2.0, "nce": 1.5, "kl": 0.5, "accuracy": 0.25,
             "lr": None, "split": "val"})
    log.close()
    typed = run_log.read_metrics(tmp_path, None)
    want = [{k: (v if k == "split" or v is None else float(v)) for k, v in r.items()} for r in typed]
    assert run_log.read_metric_rows(tmp_path) == want  # from metrics.jsonl
    (tmp_path / "metrics.jsonl").unlink()
    assert run_log.read_metric_rows(tmp_path) == want  # from metrics.csv
