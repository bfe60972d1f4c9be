"""scripts/export_results.py: a reproduce folder's report, linked images and step results, copied to commit."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from export_results import export, main  # noqa: E402


def test_export_copies_report_linked_images_and_step_results(tmp_path):
    out = tmp_path / "out"
    (out / "steps").mkdir(parents=True)
    (out / "beta_search").mkdir()
    (out / "runs" / "SIM_s0" / "report").mkdir(parents=True)
    (out / "beta_search" / "sweep.png").write_bytes(b"png1")
    (out / "runs" / "SIM_s0" / "report" / "delta.png").write_bytes(b"png2")
    (out / "runs" / "SIM_s0" / "checkpoint.pt").write_bytes(b"big")
    (out / "report.md").write_text("# r\n![sweep](beta_search/sweep.png)\n![d](runs/SIM_s0/report/delta.png)\n"
                                   "![gone](missing.png)\n")
    (out / "steps" / "verdicts_n3.json").write_text(json.dumps({"result": {"verdicts": []}}))
    (out / "reproduce.json").write_text(json.dumps({"seeds": 3}))
    log = tmp_path / "run.log"
    log.write_text("ok")
    dest = tmp_path / "dest"
    files = export(out, dest, [log])
    assert (dest / "beta_search" / "sweep.png").read_bytes() == b"png1"
    assert (dest / "runs" / "SIM_s0" / "report" / "delta.png").read_bytes() == b"png2"
    assert not (dest / "runs" / "SIM_s0" / "checkpoint.pt").exists() and "missing.png" not in files
    res = json.loads((dest / "results.json").read_text())
    assert res["steps"]["verdicts_n3"]["result"] == {"verdicts": []} and res["reproduce"] == {"seeds": 3}
    assert (dest / "logs" / "run.log").read_text() == "ok"


def test_export_refuses_an_unfinished_folder(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="report.md"):
        export(tmp_path, tmp_path / "d")
    assert main([str(tmp_path), str(tmp_path / "d")]) == 2 and "report.md" in capsys.readouterr().err


def test_export_follows_percent_encoded_links_and_escaped_alt_text(tmp_path):
    """Run folders named with a space, '#', '%41', brackets and unicode: the image a link decodes to is copied,
    and the copied report's link leads to it."""
    from urllib.parse import unquote

    from sim_models.util.escaping import markdown_link_destination, markdown_text

    out, name = tmp_path / "out", "run one #%41 [x] (y) ü音"
    (out / "runs" / name / "report").mkdir(parents=True)
    (out / "runs" / name / "report" / "tsne.png").write_bytes(b"png")
    rel = f"runs/{name}/report/tsne.png"
    (out / "report.md").write_text(f"![{markdown_text(name)}: t-SNE]({markdown_link_destination(rel)})\n")
    dest = tmp_path / "dest"
    assert rel in export(out, dest)
    assert (dest / rel).read_bytes() == b"png"
    link = (dest / "report.md").read_text().split("](")[1].rstrip(")\n")
    assert (dest / unquote(link)).is_file()
