"""Several runs of the benchmark suite side by side: each target's value per run, the median and the spread.

    python benchmarks/paired_runs.py RUN1.json RUN2.json RUN3.json [--bf16 B1.json B2.json B3.json]
                                     [--md PATH] [--png PATH]

On a shared machine one run's ratios move with the load; a target is read here from at least three
runs, each ratio taken inside one run (the two times it divides were measured minutes apart, not
days). Per target: the value of every run, their median, the spread (max - min) / median, and
"pass" when every run meets it, "FAIL" when none does, "mixed" otherwise.

--bf16: runs with bfloat16 and float32 cells of B8-T512-C512-K10-N10 (``--sim-dtypes=float32,bfloat16``),
for issue 17's half-precision target: bf16 native fwd+bwd at least 1.5x faster than the fp32 GEMM floor,
read as (fp32 floor fwd+bwd time) / (bf16 native fwd+bwd time) >= 1.5 within each run.
Needs only the standard library and matplotlib (Agg) for --png.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

if __package__:
    from . import report
else:  # run as a script: benchmarks/report.py beside this file (importable without torch)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import report  # noqa: E402

BF16_SHAPE = "B8-T512-C512-K10-N10"
BF16_BOUND = 1.5


def _status(values, op, bound):
    ok = [report._OPS[op](v, bound) for v in values]
    return "pass" if all(ok) else ("FAIL" if not any(ok) else "mixed")


def target_summary(runs: list) -> list:
    """[(label, shape, bound text, [values per run], median, spread, status)] for every CPU target measured in all runs."""
    rows = []
    for t in report.CPU_TARGETS:
        values = [t.value(r) for r in runs]
        if any(v is None for v in values):
            continue
        med = statistics.median(values)
        rows.append((t.what, t.shape, f"{t.op} {t.bound:g}", values, med, (max(values) - min(values)) / med,
                     _status(values, t.op, t.bound)))
    return rows


def bf16_summary(runs: list) -> list:
    """The half-precision row: fp32 GEMM floor fwd+bwd / bf16 native fwd+bwd per run (plus bf16 native / bf16 floor)."""
    rows = []
    bf = report.row_key(BF16_SHAPE, "bfloat16")
    speed = [report.ratio(r.time(BF16_SHAPE, report.FLOOR, "fwd+bwd"), r.time(bf, "native", "fwd+bwd")) for r in runs]
    if all(v is not None for v in speed):
        med = statistics.median(speed)
        rows.append(("fp32 GEMM floor / bf16 native (fwd+bwd)", bf, f">= {BF16_BOUND:g}", speed, med,
                     (max(speed) - min(speed)) / med, _status(speed, ">=", BF16_BOUND)))
    for mode in report.MODES:
        own = [r.over_floor(bf, "native", mode) for r in runs]
        if all(v is not None for v in own):
            med = statistics.median(own)
            rows.append((f"bf16 native {mode} / bf16 GEMM floor", bf, "(context)", own, med,
                         (max(own) - min(own)) / med, "—"))
    return rows


def markdown(rows: list, n_runs: int, sources: list) -> str:
    head = ["quantity", "shape", "target", *[f"run {i + 1}" for i in range(n_runs)], "median", "spread", "status"]
    body = [[what, shape, bound, *[f"{v:.3f}" for v in values], *["—"] * (n_runs - len(values)), f"{med:.3f}",
             f"{spread:.0%}", status]
            for what, shape, bound, values, med, spread, status in rows]  # a group with fewer runs: "—" cells
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join([f"Runs: {', '.join(sources)}", "", *lines]) + "\n"


def plot(rows: list, png_path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r[6] != "—"]
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(12, 0.45 * len(rows) + 1.5))
    for y, (what, shape, bound, values, med, _, status) in enumerate(rows):
        b = float(bound.split()[1])
        # Margin over the target, > 1 = met, for either direction of target.
        norm = [v / b for v in values] if bound.startswith(">") else [b / v for v in values]
        colour = {"pass": "tab:green", "FAIL": "tab:red", "mixed": "tab:orange"}[status]
        ax.scatter(norm, [y] * len(norm), color=colour, zorder=3)
        ax.plot([min(norm), max(norm)], [y, y], color=colour, lw=2)
    ax.axvline(1.0, color="k", lw=1, ls="--")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}" if round(x, 3) in (0.5, 2, 3, 5) else ""))
    ax.set_yticks(range(len(rows)), [f"{r[1]}\n{r[0]} {r[2]}" for r in rows], fontsize=7)
    ax.set_xlabel("margin over the target: measured / bound for >= targets, bound / measured for <= targets\n"
                  "right of the dashed line = met; one dot per run")
    ax.set_title("Issue 17 CPU targets over paired runs (green: met in every run, orange: in some, red: in none)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return Path(png_path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="several benchmark JSONs -> per-target values, median, spread")
    p.add_argument("runs", nargs="+", help="pytest-benchmark JSON files of the same selection, one per run")
    p.add_argument("--bf16", nargs="*", default=[], help="runs with --sim-dtypes=float32,bfloat16 at the paper's T=512")
    p.add_argument("--md", help="write the markdown here too")
    p.add_argument("--png", help="plot the targets here")
    a = p.parse_args(argv)
    runs = [report.load(x) for x in a.runs]
    rows = target_summary(runs)
    if a.bf16:
        rows += bf16_summary([report.load(x) for x in a.bf16])
    md = markdown(rows, max(len(a.runs), len(a.bf16)), [Path(x).name for x in [*a.runs, *a.bf16]])
    print(md)
    if a.md:
        Path(a.md).write_text(md)
    if a.png:
        plot(rows, a.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
