"""Parsers and writers of `make gpu-check` (scripts/gpu_check.py): standard library + matplotlib only.

Everything here works on plain data (stage dicts, log text, JSON lines), so it is tested in the
default test run (tests/scripts/test_gpu_check_report.py) without a GPU:

    parse_ptxas(log)          -> [{"function", "arch", "registers", "smem_bytes", "stack_bytes",
                                   "spill_store_bytes", "spill_load_bytes"}]   (nvcc -Xptxas -v)
    parse_junit(path)         -> {"passed", "failed", "errors", "skipped", "failures": [...]}
    parse_sanitizer(log)      -> {"summary_lines": [...], "errors": int | None}
    bench_json(rows, machine) -> a pytest-benchmark-shaped dict benchmarks/report.py can read
    write_summary(result, out)-> gpu_check.json, gpu_check.md in ``out`` (after every stage)
    write_outputs(result, out)-> the same, then gpu_check.png (last, optional)
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

__all__ = ["parse_ptxas", "parse_junit", "parse_sanitizer", "bench_json", "markdown", "write_summary", "write_outputs",
           "STATUSES"]

STATUSES = ("ok", "failed", "timeout", "killed", "skipped", "running")

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'")
_PROPS = re.compile(r"Function properties for (\S+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


def parse_ptxas(log: str) -> list[dict]:
    """Per kernel and architecture: registers, shared memory, stack frame and spills from ptxas -v.

    ptxas prints, per entry function: "Compiling entry function 'F' for 'sm_90'", then "Function
    properties for F" with "N bytes stack frame, S bytes spill stores, L bytes spill loads", then
    "Used R registers, ... B bytes smem". Lines of other functions (device functions) are ignored.
    """
    out, cur = [], None
    for line in log.splitlines():
        m = _ENTRY.search(line)
        if m:
            cur = {"function": m.group(1), "arch": m.group(2), "registers": None, "smem_bytes": 0,
                   "stack_bytes": None, "spill_store_bytes": None, "spill_load_bytes": None}
            out.append(cur)
            continue
        if cur is None:
            continue
        m = _FRAME.search(line)
        if m and cur["stack_bytes"] is None:
            cur["stack_bytes"], cur["spill_store_bytes"], cur["spill_load_bytes"] = map(int, m.groups())
            continue
        m = _USED.search(line)
        if m and cur["registers"] is None:
            cur["registers"] = int(m.group(1))
            cur["smem_bytes"] = int(m.group(2) or 0)
    return out


def parse_junit(path) -> dict:
    """Counts and the failing tests (name and the first 400 characters of the message) of a JUnit XML."""
    root = ET.parse(path).getroot()
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures, skips = [], {}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            key = "failed" if "failure" in kinds else "errors"
            counts[key] += 1
            child = case.find("failure") if "failure" in kinds else case.find("error")
            msg = (child.get("message") or child.text or "").strip()
            failures.append({"test": name, "message": msg[:400]})
        elif "skipped" in kinds:
            counts["skipped"] += 1
            reason = (case.find("skipped").get("message") or "").strip()[:200]
            skips[reason] = skips.get(reason, 0) + 1
        else:
            counts["passed"] += 1
    return {**counts, "failures": failures, "skip_reasons": skips}


_SAN_ERRORS = re.compile(r"ERROR SUMMARY: (\d+) error")
_RACE = re.compile(r"RACECHECK SUMMARY: \d+ hazards? displayed \((\d+) errors?, (\d+) warnings?\)")


def parse_sanitizer(log: str) -> dict:
    """compute-sanitizer's own verdict lines and the error count they give (None when there is none)."""
    lines = [ln.strip() for ln in log.splitlines() if "SUMMARY" in ln]
    errors = None
    for ln in lines:
        m = _SAN_ERRORS.search(ln) or _RACE.search(ln)
        if m:
            errors = (errors or 0) + int(m.group(1))
    return {"summary_lines": lines, "errors": errors}


def bench_json(rows: list[dict], machine: dict | None = None, commit: dict | None = None,
               when: str = "") -> dict:
    """JSON lines of the benchmark suite (``--sim-jsonl``) as a pytest-benchmark JSON for
    benchmarks/report.py: the host statistics become ``stats``, the CUDA events stay in extra_info."""
    benches = []
    for row in rows:
        if "provider" not in row or "shape" not in row:
            continue
        host = row.get("host_s") or row.get("cuda_event_s") or {}
        if not host:
            continue
        name = f"{row['shape']}-{row.get('dtype', 'float32')}-{row['provider']}-{row['mode']}"
        benches.append({"name": name, "fullname": name, "extra_info": row,
                        "stats": {"min": host["min"], "median": host["median"], "mean": host["mean"],
                                  "rounds": host.get("rounds", 0)}})
    return {"machine_info": {"sim": dict(machine or {})}, "commit_info": dict(commit or {}), "datetime": when,
            "benchmarks": benches}


def _fmt_s(s):
    return "—" if s is None else f"{s:.1f} s"


def _stage_table(stages: list[dict]) -> str:
    lines = ["| stage | status | time | note |", "|---|---|---|---|"]
    for st in stages:
        note = st.get("reason") or st.get("summary") or ""
        lines.append(f"| {st['name']} | {st['status']} | {_fmt_s(st.get('seconds'))} | {note} |")
    return "\n".join(lines)


def _ptxas_table(kernels: list[dict]) -> str:
    if not kernels:
        return "(no ptxas report: the CUDA sources were not compiled with -Xptxas -v)"
    lines = ["| kernel | arch | registers | smem (B) | stack (B) | spill stores (B) | spill loads (B) |",
             "|---|---|---|---|---|---|---|"]
    for k in kernels:
        lines.append(f"| `{k['function'][:110]}` | {k['arch']} | {k['registers']} | {k['smem_bytes']} | "
                     f"{k['stack_bytes']} | {k['spill_store_bytes']} | {k['spill_load_bytes']} |")
    return "\n".join(lines)


def _triton_table(rows: list[dict]) -> str:
    if not rows:
        return "(not compiled)"
    lines = ["| kernel | dtype | Cz | arch | warps | registers | spill stack (B) | shared (B) | limit (B) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        flag = " **over**" if r.get("over_limit") else ""
        lines.append(f"| {r['kernel']} | {r['dtype']} | {r['width']} | sm_{r['arch']} | {r.get('num_warps')} | "
                     f"{r.get('reg')} | {r.get('stack')} | {r.get('shared')}{flag} | {r.get('limit')} |")
    return "\n".join(lines)


def _train_table(rows: list[dict]) -> str:
    rows = [r for r in rows if "train_step" in r]
    if not rows:
        return "(not measured)"
    lines = ["| config | loss backend | device | step (median) | loss fwd+bwd | loss share of a step |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        step = (r.get("step_s") or {}).get("median")
        lines.append(f"| {r['config']} | {r['backend']} | {r['device']} | {_ms(step)} | {_ms(r.get('loss_seconds'))} | "
                     f"{r.get('loss_share', 0):.2f} |")
    return "\n".join(lines)


def _ms(s):
    return "—" if s is None else f"{s * 1e3:.2f} ms"


def _threads_table(rows: list[dict]) -> str:
    if not rows:
        return "(not measured)"
    lines = ["| shape | threads | native CPU fwd+bwd (min) | speed-up over 1 thread |", "|---|---|---|---|"]
    base = {r["shape"]: r["seconds"] for r in rows if r["threads"] == 1}
    for r in rows:
        b = base.get(r["shape"])
        speedup = "—" if not b else f"{b / r['seconds']:.2f}×"
        lines.append(f"| {r['shape']} | {r['threads']} | {_ms(r['seconds'])} | {speedup} |")
    return "\n".join(lines)


def markdown(result: dict, bench_md: str | None = None) -> str:
    """The summary page: machine, stages, tests, sanitizers, ptxas, benchmarks, training step, threads."""
    env = result.get("env", {})
    stages = result.get("stages", [])
    parts = ["# GPU check", "",
             f"Run {result.get('started', '?')}, commit {result.get('commit', '?')}; "
             f"{'dry run (no GPU)' if result.get('dry_run') else 'on ' + str(env.get('gpu', '?'))}; "
             f"python {env.get('python', '?')}, torch {env.get('torch', '?')}, triton {env.get('triton', '?')}, "
             f"nvcc {env.get('nvcc', '?')}, {env.get('cpus', '?')} CPUs.", "",
             "Command: `make gpu-check` (scripts/gpu_check.py). Every stage is time-boxed; a failed stage "
             "does not stop the later ones.", "", f"Verdict: {result.get('verdict', '?')}.", "",
             "## Stages", "", _stage_table(stages), ""]
    tests = result.get("tests")
    if tests:
        parts += ["## Correctness tests", "",
                  f"{tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
                  f"{tests['skipped']} skipped.", ""]
        for f in tests.get("failures", []):
            parts.append(f"- FAILED `{f['test']}`: {f['message'][:200]}")
        for reason, n in sorted(tests.get("skip_reasons", {}).items(), key=lambda kv: -kv[1])[:8]:
            parts.append(f"- skipped ×{n}: {reason}")
        parts.append("")
    san = result.get("sanitizers") or {}
    if san:
        parts += ["## compute-sanitizer", ""]
        for tool, v in san.items():
            lines = "; ".join(v.get("summary_lines") or ["(no summary line)"])
            parts.append(f"- {tool}: {lines}")
        parts.append("")
    parts += ["## Registers and spills (nvcc -Xptxas -v)", "", _ptxas_table(result.get("ptxas", [])), ""]
    parts += ["## Triton kernels compiled for sm_80 / sm_90 (compile_check.py)", "",
              _triton_table(result.get("triton_resources", [])), ""]
    parts += ["## Benchmarks", "", bench_md or "(not measured)", ""]
    parts += ["## A training step per loss backend", "", _train_table(result.get("train_rows", [])), ""]
    parts += ["## CPU kernel thread scaling", "", _threads_table(result.get("thread_rows", [])), ""]
    return "\n".join(parts) + "\n"


def write_summary(result: dict, out) -> dict:
    """gpu_check.json and gpu_check.md in ``out`` (no plot: cheap enough after every stage); returns {name: path}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "gpu_check.json", "md": out / "gpu_check.md"}
    _write_atomic(paths["json"], json.dumps(result, indent=1, default=str))
    _write_atomic(paths["md"], markdown(result))
    return paths


def write_outputs(result: dict, out) -> dict:
    """Write gpu_check.json and gpu_check.md, then gpu_check.png (the benchmark plot, or a stage chart
    when nothing was timed) into ``out``; returns {name: path}. The plot comes last and is optional:
    when it fails, the JSON and the markdown are already written and record the error."""
    import sys

    out = Path(out)
    paths = write_summary(result, out)
    png = out / "gpu_check.png"
    try:
        root = Path(__file__).resolve().parent.parent
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        from benchmarks import report as bench_report

        bench = bench_json(result.get("bench_rows", []), result.get("bench_machine"), {"id": result.get("commit", "")},
                           result.get("started", ""))
        bench_md = None
        if bench["benchmarks"]:
            r = bench_report.load(bench, stat="median" if bench["machine_info"]["sim"].get("device") == "cuda" else "min")
            bench_md = bench_report.markdown(r).replace("## Smooth-InfoNCE benchmarks", "", 1).strip()
            _write_atomic(paths["md"], markdown(result, bench_md))
            bench_report.plot(r, png)
        else:
            _stage_chart(result.get("stages", []), png)
        paths["png"] = png
    except Exception as e:  # the plot is optional; the results are not
        result["report_error"] = f"{type(e).__name__}: {e}"
        write_summary(result, out)
    return paths


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a kill mid-write leaves the previous version whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _stage_chart(stages: list[dict], png) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ok": "tab:green", "failed": "tab:red", "timeout": "tab:orange", "killed": "tab:purple",
              "skipped": "tab:gray", "running": "tab:blue"}
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.4 * max(1, len(stages))), constrained_layout=True)
    names = [s["name"] for s in stages] or ["(no stage)"]
    secs = [s.get("seconds") or 0.0 for s in stages] or [0.0]
    ax.barh(names, secs, color=[colors.get(s["status"], "k") for s in stages] or ["k"])
    for i, s in enumerate(stages):
        ax.text(secs[i], i, f" {s['status']}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title("make gpu-check: stages (no benchmark was timed)")
    fig.savefig(png, dpi=100)
    plt.close(fig)
