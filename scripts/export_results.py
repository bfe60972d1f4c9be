"""Copy a finished `sim reproduce` folder's results into a small folder that can be committed.

    python scripts/export_results.py OUT DEST [--log FILE ...]

DEST gets: report.md (and report.html), every image report.md links to (same relative paths, so the
links keep working; a link is percent-encoded and leads to the file it decodes to), results.json
(reproduce.json's settings + every step's stored result: the measurements, verdicts, probe tables,
β search), the β search's sweep.json, and the given log files.
Checkpoints and audio are not copied (the runs stay in OUT). Exits 2 when OUT has no report.md.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote

# ![alt](destination): the alt text may hold backslash-escaped brackets; the destination is percent-encoded
_IMAGE = re.compile(r"!\[(?:\\.|[^\]\\])*\]\(([^)\s]+)\)")


def linked_images(markdown: str) -> list:
    """The paths (decoded, relative to the markdown file) of the images ``markdown`` shows, sorted, once each."""
    return sorted({unquote(dest) for dest in _IMAGE.findall(markdown)})


def export(out: Path, dest: Path, logs=()) -> list:
    """Copies the results of ``out`` into ``dest``; returns the files written (paths relative to dest)."""
    if not (out / "report.md").is_file():
        raise FileNotFoundError(f"{out}: no report.md (has `sim reproduce` finished?)")
    dest.mkdir(parents=True, exist_ok=True)
    written = []

    def copy(src: Path, rel: str):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
        written.append(rel)

    text = (out / "report.md").read_text()
    copy(out / "report.md", "report.md")
    if (out / "report.html").is_file():
        copy(out / "report.html", "report.html")
    for rel in linked_images(text):
        src = (out / rel).resolve()
        if src.is_file() and out.resolve() in src.parents:
            copy(src, rel)
    results = {"reproduce": json.loads((out / "reproduce.json").read_text()) if (out / "reproduce.json").is_file()
               else None, "steps": {}}
    for p in sorted((out / "steps").glob("*.json")):
        results["steps"][p.stem] = json.loads(p.read_text())
    (dest / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    written.append("results.json")
    if (out / "beta_search" / "sweep.json").is_file():
        copy(out / "beta_search" / "sweep.json", "beta_search/sweep.json")
    for log in logs:
        copy(Path(log), f"logs/{Path(log).name}")
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--log", action="append", default=[])
    a = ap.parse_args(argv)
    try:
        files = export(a.out, a.dest, a.log)
    except FileNotFoundError as e:
        print(f"export_results: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} files to {a.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
