"""`sim report`'s HTML page: every decoded sound has a wav and a player, and a real headless Chromium
loads the page with no failed request, every <audio> has a positive duration, and a screenshot is written.

The browser tests skip with a reason when no Chromium is installed; CI installs it (.ci/run), and
there ``CI=true`` turns the skip into a failure so the check cannot silently vanish.
The screenshot goes to $SIM_SCREENSHOT_DIR when set (to look at it), else to pytest's tmp_path.
"""
import os
import re
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from sim_models.report.browser_check import check_page, find_chromium
from sim_models.report.html import page
from sim_models.report.write import write_reports

from tests.sim_models.analysis.test_analysis_run import LENGTH, SR, _report_args, make_toy_syllable_data, tiny_config


def _need_browser():
    if find_chromium() is None:
        msg = "no Chromium installed (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the browser test: " + msg)
        pytest.skip(msg)
    try:
        import websocket  # noqa: F401  (websocket-client)
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the browser test: websocket-client is not installed (requirements.txt)")
        pytest.skip("websocket-client is not installed (pip install websocket-client)")


@pytest.fixture(scope="module")
def browser():
    """Module scope and listed first, so a missing browser skips before the runs are trained."""
    _need_browser()


def _shot_dir(tmp_path) -> Path:
    d = os.environ.get("SIM_SCREENSHOT_DIR")
    return Path(d) if d else tmp_path


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """Two tiny trained runs (SIM, GIM) and `sim report` over both with a comparison file."""
    from sim_models.data.datasets import SyllableDataset
    from sim_models.training.trainer import Trainer
    root = tmp_path_factory.mktemp("html")
    data = make_toy_syllable_data(root / "data")
    runs = []
    for name, cfg in (("sim", tiny_config()), ("gim", tiny_config(beta=0.0, probabilistic=False))):
        Trainer(cfg, SyllableDataset(data, "train", SR, LENGTH), root / name, progress=False, tensorboard=False).fit()
        runs.append(root / name)
    args = _report_args(runs, data, out=root / "cmp" / "compare.md")
    args.audio_examples = 2
    assert args.func(args) == 0
    return {"root": root, "runs": runs, "data": data}


def _srcs(text: str, tag: str) -> list:
    return re.findall(rf'<{tag}[^>]*\ssrc="([^"]+)"', text)


def test_every_sound_has_a_wav_and_a_player(reported):
    run = reported["runs"][0]
    text = (run / "report.html").read_text()
    rep = run / "report"
    audio = _srcs(text, "audio")
    # per module (3): 2 reconstructions, 1 traversal dim x 2 starts x 3 steps, 3 interpolation steps + the all-steps file;
    # 2 originals; side by side: 2 runs x 3 modules interpolation players
    assert len(audio) == 2 + 3 * (2 + 2 * 3 + 3 + 1) + 2 * 3
    assert len(list(rep.glob("traversal_m*_dim*_*_s*.wav"))) == 3 * 2 * 3
    assert len(list(rep.glob("interpolation_m*_a*.wav"))) == 3 * 3
    assert len(list(rep.glob("reconstruction_m*_u*.wav"))) == 3 * 2 and len(list(rep.glob("original_u*.wav"))) == 2
    for src in audio + _srcs(text, "img"):
        assert (run / src).resolve().is_file(), src
    wav, sr = sf.read(next(rep.glob("traversal_m2_dim*_zero_s0.wav")))
    assert sr == SR and wav.shape == (LENGTH,)
    orig, _ = sf.read(rep / "original_u0.wav")
    assert orig.shape == (LENGTH,) and abs(orig).max() > 0.01
    for section in ("Decoders: original vs reconstruction", "Latent traversal", "Interpolation", "Entanglement δ",
                    "Vowel concentration", "t-SNE", "Side by side"):
        assert section in text
    assert (run / "report.md").is_file()  # the markdown report stays
    cmp_html = reported["root"] / "cmp" / "compare.html"
    assert cmp_html.is_file() and all((cmp_html.parent / s).resolve().is_file() for s in _srcs(cmp_html.read_text(), "img"))


def test_page_escapes_text():
    text = page("a <b> & c", ["<p>x</p>"])
    assert "<title>a &lt;b&gt; &amp; c</title>" in text and text.startswith("<!doctype html>")


def test_report_in_headless_chromium(browser, reported, tmp_path):
    run = reported["runs"][0]
    shot = _shot_dir(tmp_path) / "report_sim.png"
    r = check_page(run / "report.html", shot)
    assert r["failed"] == [], r["failed"]
    n_audio = len(_srcs((run / "report.html").read_text(), "audio"))
    assert len(r["audio"]) == n_audio > 0
    bad = [a for a in r["audio"] if not a["duration"] > 0 or a["error"] is not None]
    assert bad == [], bad
    # every decoded clip lasts data.length samples (the all-steps interpolation files are longer)
    for a in r["audio"]:
        if "interpolation_m" not in a["src"] or "_a" in a["src"].rsplit("/", 1)[-1]:
            assert a["duration"] == pytest.approx(LENGTH / SR, abs=1e-3), a
    assert r["images"] and all(i["width"] > 0 for i in r["images"])
    assert any(u.endswith(".wav") for u in r["requests"]) and any(u.endswith(".png") for u in r["requests"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    cmp = check_page(reported["root"] / "cmp" / "compare.html", _shot_dir(tmp_path) / "report_compare.png")
    assert cmp["failed"] == [] and cmp["audio"] and all(a["duration"] > 0 for a in cmp["audio"])


def test_browser_check_catches_a_missing_file(browser, reported, tmp_path):
    """The check can fail: a copy of the page whose run folder lacks one wav and one png."""
    src = reported["runs"][1]
    run = tmp_path / src.name
    shutil.copytree(src, run)
    (run / "report" / "original_u0.wav").unlink()
    (run / "report" / "tsne.png").unlink()
    r = check_page(run / "report.html", tmp_path / "broken.png")
    failed = {Path(u).name for u, _ in r["failed"]}
    assert {"original_u0.wav", "tsne.png"} <= failed, r["failed"]
    assert any(not a["duration"] > 0 for a in r["audio"])


def test_verdicts_render_into_both_reports(reported, tmp_path):
    from sim_models.analysis.verdicts import Verdict
    v = Verdict(claim="Table 2: supervised best on syllables", status="inconclusive", measured="x <1>",
                paper="83.3 %", rule="interval rule", reason="1 seed")
    run = reported["runs"][0]
    summaries = [__import__("json").loads((run / "report" / "analysis.json").read_text())]
    write_reports(summaries, verdicts=[v])
    text = (run / "report.html").read_text()
    assert "Verdicts" in text and "x &lt;1&gt;" in text and '<span class="inconclusive">inconclusive</span>' in text
    md = (run / "report.md").read_text()
    assert "## Verdicts" in md and "| Table 2: supervised best on syllables | inconclusive |" in md
