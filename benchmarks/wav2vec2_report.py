"""Ratios of the wav2vec 2.0 loss benchmarks, one or several runs side by side.

    python benchmarks/wav2vec2_report.py RUN1.json [RUN2.json RUN3.json] [--md PATH] [--png PATH]

Reads pytest-benchmark JSON files of benchmarks/test_wav2vec2_loss.py. Per shape, device and mode, inside
each run: the fused op's speed-up over Hugging Face's formula eager and compiled (time of theirs / time of
ours, median of the rounds; CUDA: CUDA-event times) and its peak extra memory as a share of theirs. With
several runs, each target's value per run, the median and the spread ((max - min) / median), and "pass"
when every run meets it, "FAIL" when none does, "mixed" otherwise.

Targets (CPU, fwd+bwd; the ones the fused loss was built to meet): peak extra memory <= 0.1 x HF eager's,
speed >= 3 x HF eager, >= 1.5 x HF compiled. Needs only the standard library (and matplotlib for --png).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

TARGETS = (  # (label, numerator provider, denominator provider, quantity, op, bound)
    ("speed-up over HF eager", "hf-eager", "native", "time", ">=", 3.0),
    ("speed-up over HF compiled", "hf-compiled", "native", "time", ">=", 1.5),
    ("peak extra memory / HF eager's", "native", "hf-eager", "memory", "<=", 0.1),
)
_OPS = {">=": lambda v, b: v >= b, "<=": lambda v, b: v <= b}


def _cells(path: str) -> dict:
    """{(shape, device, mode, provider): {"time": s, "memory": bytes or None}} of one run."""
    out = {}
    for b in json.loads(Path(path).read_text())["benchmarks"]:
        e = b.get("extra_info", {})
        if e.get("loss") != "wav2vec2":
            continue
        t = e.get("cuda_event_s", {}).get("median") or b["stats"]["median"]
        out[(e["shape"], e["device"], e["mode"], e["provider"])] = {"time": t, "memory": e.get("peak_extra_bytes")}
    return out


def ratios(cells: dict) -> list:
    """[(shape, device, mode, label, op, bound, value)] for every target both of whose providers were measured."""
    rows = []
    for shape, device, mode in sorted({k[:3] for k in cells}):
        for label, num, den, qty, op, bound in TARGETS:
            a, b = cells.get((shape, device, mode, num)), cells.get((shape, device, mode, den))
            if a is None or b is None or a[qty] is None or b[qty] in (None, 0):
                continue
            rows.append((shape, device, mode, label, op, bound, a[qty] / b[qty]))
    return rows


def summary(paths: list) -> list:
    """[(shape, device, mode, label, op, bound, [value per run], median, spread, status)] over the runs."""
    per_run = [{r[:6]: r[6] for r in ratios(_cells(p))} for p in paths]
    keys = [k for k in per_run[0] if all(k in r for r in per_run)]
    rows = []
    for k in keys:
        values = [r[k] for r in per_run]
        med = statistics.median(values)
        spread = (max(values) - min(values)) / med if med else float("nan")
        ok = [_OPS[k[4]](v, k[5]) for v in values]
        status = "pass" if all(ok) else ("FAIL" if not any(ok) else "mixed")
        rows.append((*k, values, med, spread, status))
    return rows


def timings(paths: list) -> list:
    """[(shape, device, mode, provider, [seconds per run], [peak extra MB per run])]."""
    runs = [_cells(p) for p in paths]
    keys = sorted(set().union(*runs), key=lambda k: (k[0], k[1], k[2], k[3]))
    return [(*k, [r[k]["time"] for r in runs if k in r],
             [r[k]["memory"] / 2**20 for r in runs if k in r and r[k]["memory"] is not None]) for k in keys]


def markdown(paths: list) -> str:
    lines = [f"Runs: {', '.join(Path(p).name for p in paths)}", "",
             "| shape | device | mode | target | bound | per run | median | spread | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for shape, device, mode, label, op, bound, values, med, spread, status in summary(paths):
        if mode != "fwd+bwd":
            status = "(fwd: no target)"
        lines.append(f"| {shape} | {device} | {mode} | {label} | {op} {bound:g} | "
                     f"{', '.join(f'{v:.3g}' for v in values)} | {med:.3g} | {spread:.0%} | {status} |")
    lines += ["", "| shape | device | mode | provider | ms per call (per run) | peak extra MB (per run) |",
              "|---|---|---|---|---|---|"]
    for shape, device, mode, provider, times, mem in timings(paths):
        lines.append(f"| {shape} | {device} | {mode} | {provider} | {', '.join(f'{1e3 * t:.1f}' for t in times)} | "
                     f"{', '.join(f'{m:.1f}' for m in mem) or '—'} |")
    return "\n".join(lines) + "\n"


def plot(paths: list, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in timings(paths) if r[2] == "fwd+bwd"]
    shapes = sorted({r[0] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, qty, unit in ((axes[0], 4, "ms per fwd+bwd call"), (axes[1], 5, "peak extra memory (MB)")):
        providers = sorted({r[3] for r in rows})
        width = 0.8 / max(1, len(providers))
        for i, p in enumerate(providers):
            vals = []
            for s in shapes:
                cell = [r for r in rows if r[0] == s and r[3] == p]
                v = statistics.median(cell[0][qty]) if cell and cell[0][qty] else 0.0
                vals.append(v * (1e3 if qty == 4 else 1.0))
            ax.bar([j + i * width for j in range(len(shapes))], vals, width, label=p)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shapes))], shapes)
        ax.set_yscale("log")
        ax.set_ylabel(unit)
        ax.legend(fontsize=8)
    fig.suptitle(f"wav2vec 2.0 contrastive loss, median of {len(paths)} run(s)")
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="pytest-benchmark JSON files of benchmarks/test_wav2vec2_loss.py")
    ap.add_argument("--md", default=None, help="also write the markdown here")
    ap.add_argument("--png", default=None, help="draw the times and memory (fwd+bwd) here")
    a = ap.parse_args(argv)
    text = markdown(a.runs)
    print(text)
    if a.md:
        Path(a.md).write_text(text)
    if a.png:
        plot(a.runs, a.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
