"""Turn a pytest-benchmark JSON of this suite into markdown tables and a PNG plot.

    python benchmarks/report.py benchmarks/results.json [--stat min|median|mean] [--md PATH] [--png PATH]

Prints the markdown (and writes it to --md, default results.md beside the JSON) and writes the
plot to --png (default results.png beside the JSON; --no-png to skip). Needs only the standard
library and matplotlib (Agg), not torch.

Tables:
  1. Time per call, one row per shape (and dtype, when not float32), columns provider x mode; each
     cell is the time and, in brackets, its multiple of the GEMM floor of the same mode and dtype
     (fwd: the forward projection; fwd+bwd: all three GEMMs); then the speedups of native over the
     eager and compiled reference (and of native over Triton on CUDA) and the peak extra memory of
     fwd+bwd with native / eager. Providers with no cell in the JSON get no column.
  2. Peak extra memory of both modes (CPU: a fresh process per cell, see benchmarks/_memory_probe.py;
     CUDA: torch.cuda.max_memory_allocated around one call).
  3. The targets of the device's issues (CPU: issues 3 and 17; CUDA: issue 13), each with the
     measured value and pass / FAIL / not measured.
On CUDA the times are those of CUDA events (``extra_info["cuda_event_s"]``), not the host timer.
Benchmarks without this suite's extra_info (e.g. a training-step benchmark) are listed last.
"""
from __future__ import annotations

import argparse
import json
import math
import operator
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROVIDERS = ("eager", "compiled", "native", "triton")
FLOOR = "gemm_floor"
MODES = ("fwd", "fwd+bwd")
STATS = ("min", "median", "mean")
LABELS = {"eager": "eager ref", "compiled": "compiled ref", "native": "native", "triton": "Triton",
          FLOOR: "GEMM floor"}
MIB = 2 ** 20


@dataclass
class Cell:
    seconds: float
    rounds: int
    peak_extra_bytes: int | None = None
    grad_bytes: int | None = None


@dataclass
class Results:
    """Parsed benchmark JSON: cells[(row, provider, mode)], rows in table order.

    A row is a shape id, with "-<dtype>" appended when the dtype is not float32
    (``row_key("B8-T512-C512-K10-N10", "bfloat16")``)."""
    stat: str
    cells: dict = field(default_factory=dict)
    shapes: list = field(default_factory=list)
    sets: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    datetime: str = ""
    commit: dict = field(default_factory=dict)
    others: list = field(default_factory=list)  # (name, seconds, rounds) of benchmarks not of this suite
    device: str = "cpu"

    @property
    def providers(self) -> tuple:
        """The providers that have at least one cell, in PROVIDERS order."""
        have = {p for _, p, _ in self.cells}
        return tuple(p for p in PROVIDERS if p in have)

    def time(self, shape, provider, mode):
        c = self.cells.get((shape, provider, mode))
        return None if c is None else c.seconds

    def memory(self, shape, provider, mode):
        c = self.cells.get((shape, provider, mode))
        return None if c is None else c.peak_extra_bytes

    def grad_bytes(self, shape):
        """Bytes of the .grad buffers fwd+bwd creates (the same for every provider), if recorded."""
        for p in PROVIDERS:
            c = self.cells.get((shape, p, "fwd+bwd"))
            if c is not None and c.grad_bytes is not None:
                return c.grad_bytes
        return None

    def over_floor(self, shape, provider, mode):
        return ratio(self.time(shape, provider, mode), self.time(shape, FLOOR, mode))

    def speedup(self, shape, slow, fast, mode):
        return ratio(self.time(shape, slow, mode), self.time(shape, fast, mode))

    def memory_ratio(self, shape, a, b, mode):
        return ratio(self.memory(shape, a, mode), self.memory(shape, b, mode))


def row_key(shape: str, dtype: str | None) -> str:
    """The table row of a shape in a dtype: the shape id itself for float32 (or unknown)."""
    return shape if dtype in (None, "float32") else f"{shape}-{dtype}"


def ratio(num, den):
    """num / den, or None when either is missing or den is 0."""
    if num is None or den is None or den == 0:
        return None
    return num / den


_DTYPE_ORDER = {None: 0, "float32": 0, "bfloat16": 1, "float16": 2}


def load(path, stat: str = "min") -> Results:
    """Read a pytest-benchmark JSON file (or an already parsed dict)."""
    if stat not in STATS:
        raise ValueError(f"stat must be one of {STATS}, got {stat!r}")
    data = path if isinstance(path, dict) else json.loads(Path(path).read_text())
    if "benchmarks" not in data:
        raise ValueError(f"{path}: not a pytest-benchmark JSON (no 'benchmarks' key)")
    machine = data.get("machine_info", {})
    r = Results(stat=stat, machine=machine, datetime=data.get("datetime", ""),
                commit=data.get("commit_info", {}) or {}, device=machine.get("sim", {}).get("device", "cpu"))
    order = {}
    for b in data["benchmarks"]:
        ei, st = b.get("extra_info", {}) or {}, b["stats"]
        if not {"shape", "provider", "mode"} <= ei.keys():
            r.others.append((b.get("fullname", b.get("name", "?")), st[stat], st.get("rounds", 0)))
            continue
        row = row_key(ei["shape"], ei.get("dtype"))
        events = ei.get("cuda_event_s")
        seconds = events[stat] if events else st[stat]
        rounds = events["rounds"] if events else st.get("rounds", 0)
        r.cells[(row, ei["provider"], ei["mode"])] = Cell(seconds, rounds, ei.get("peak_extra_bytes"),
                                                          ei.get("grad_bytes"))
        order.setdefault(row, (ei.get("shape_index", math.inf), _DTYPE_ORDER.get(ei.get("dtype"), 9), len(order)))
        r.sets[row] = ei.get("sets", [])
        if ei.get("device"):
            r.device = ei["device"]
    r.shapes = sorted(order, key=order.get)
    return r


# ----------------------------------------------------------------------------------------- format
def fmt_time(s):
    if s is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale or unit == "µs":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"


def fmt_x(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}×"


def fmt_mib(b):
    if b is None:
        return "—"
    v = b / MIB
    return f"{v:.0f} MiB" if v >= 100 else f"{v:.3g} MiB"


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _shape_cell(r: Results, shape: str) -> str:
    sets = ", ".join(r.sets.get(shape, []))
    return f"{shape} ({sets})" if sets else shape


def machine_line(r: Results) -> str:
    """Machine: CPU model, cores, torch version, threads (recorded by benchmarks/conftest.py)."""
    sim = r.machine.get("sim", {})
    cpu = sim.get("cpu_model") or r.machine.get("cpu", {}).get("brand_raw") or r.machine.get("processor") or "unknown CPU"
    cores = sim.get("logical_cores") or r.machine.get("cpu", {}).get("count", "?")
    native = sim.get("native_cpu_kernel")
    native_txt = "" if native is None else ("; native CPU kernel: built" if native else
                                             "; native CPU kernel: NOT built (native cells skipped)")
    gpu = sim.get("gpu")
    gpu_txt = "" if not gpu else (f"; GPU: {gpu} ({sim.get('gpu_sms', '?')} SMs, {sim.get('gpu_memory_gib', '?')} GiB, "
                                  f"CUDA {sim.get('cuda_version', '?')}), times from CUDA events")
    return (f"Machine: {cpu}, {cores} logical cores, torch {sim.get('torch_version', '?')}, "
            f"{sim.get('torch_threads', '?')} torch threads{native_txt}{gpu_txt}")


def command_line(r: Results, json_path=None) -> str:
    cmd = r.machine.get("sim", {}).get("command", "python -m pytest benchmarks --benchmark-only ...")
    report = f"python benchmarks/report.py {json_path}" if json_path else "python benchmarks/report.py <json>"
    return f"Command: `{cmd}` then `{report}`"


def time_table(r: Results) -> str:
    providers = r.providers
    slower = [p for p in ("eager", "compiled", "triton") if p in providers]
    header = (["shape"] + [f"{LABELS[FLOOR]} {m}" for m in MODES]
              + [f"{LABELS[p]} {m}" for m in MODES for p in providers]
              + [f"{LABELS[s]} / native {m}" for m in MODES for s in slower]
              + [f"peak extra fwd+bwd {LABELS[p]}" for p in providers] + ["memory native / eager ref fwd+bwd"])
    rows = []
    for s in r.shapes:
        row = [_shape_cell(r, s)] + [fmt_time(r.time(s, FLOOR, m)) for m in MODES]
        for m in MODES:
            for p in providers:
                t = r.time(s, p, m)
                row.append("—" if t is None else f"{fmt_time(t)} ({fmt_x(r.over_floor(s, p, m))})")
        row += [fmt_x(r.speedup(s, slow, "native", m)) for m in MODES for slow in slower]
        row += [fmt_mib(r.memory(s, p, "fwd+bwd")) for p in providers]
        row.append(fmt_x(r.memory_ratio(s, "native", "eager", "fwd+bwd"), 3))
        rows.append(row)
    return _table(header, rows)


def memory_table(r: Results) -> str:
    providers = r.providers
    header = (["shape"] + [f"{LABELS[p]} {m}" for m in MODES for p in providers]
              + [f"native / eager ref {m}" for m in MODES] + [f"native / compiled ref {m}" for m in MODES]
              + ["of fwd+bwd: .grad buffers"])
    rows = []
    for s in r.shapes:
        row = [_shape_cell(r, s)] + [fmt_mib(r.memory(s, p, m)) for m in MODES for p in providers]
        row += [fmt_x(r.memory_ratio(s, "native", "eager", m), 3) for m in MODES]
        row += [fmt_x(r.memory_ratio(s, "native", "compiled", m), 3) for m in MODES]
        row.append(fmt_mib(r.grad_bytes(s)))
        rows.append(row)
    return _table(header, rows)


# ---------------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    """One acceptance target: value(results) compared with ``bound`` by ``op``."""
    shape: str
    what: str
    kind: str  # "floor" (time / GEMM floor), "speedup" (time a / time b), "memory" (memory a / memory b)
    a: str
    b: str | None
    mode: str
    op: str
    bound: float

    def value(self, r: Results):
        if self.kind == "floor":
            return r.over_floor(self.shape, self.a, self.mode)
        if self.kind == "speedup":
            return r.speedup(self.shape, self.a, self.b, self.mode)
        if self.kind == "memory":
            return r.memory_ratio(self.shape, self.a, self.b, self.mode)
        raise ValueError(f"Target.kind must be floor, speedup or memory, got {self.kind!r}")


_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt}
_PAPER_T512, _PAPER_T64 = "B8-T512-C512-K10-N10", "B8-T64-C512-K10-N10"
_MANY_NEG, _THESIS_REAL = "B8-T128-C256-K12-N128", "B171-T52-C32-K12-N10"
_THESIS = ("B8-T64-C32-K12-N10", "B8-T512-C32-K12-N10", _THESIS_REAL)
FB = "fwd+bwd"
# CPU: issue 3's memory targets and issue 17's speed targets; speedups are read on fwd+bwd unless named.
CPU_TARGETS = (
    Target(_PAPER_T512, "native fwd+bwd / GEMM floor", "floor", "native", None, FB, "<=", 1.1),
    Target(_PAPER_T512, "eager ref / native (fwd+bwd)", "speedup", "eager", "native", FB, ">=", 4.0),
    Target(_PAPER_T512, "compiled ref / native (fwd+bwd)", "speedup", "compiled", "native", FB, ">=", 1.8),
    Target(_PAPER_T512, "peak extra memory native / eager ref (fwd+bwd)", "memory", "native", "eager", FB, "<=", 0.1),
    Target(_PAPER_T64, "native fwd+bwd / GEMM floor", "floor", "native", None, FB, "<=", 1.2),
    Target(_PAPER_T64, "peak extra memory native / eager ref (fwd+bwd)", "memory", "native", "eager", FB, "<", 1.0),
    Target(_MANY_NEG, "native fwd+bwd / GEMM floor", "floor", "native", None, FB, "<=", 2.0),
    Target(_MANY_NEG, "compiled ref / native (fwd+bwd)", "speedup", "compiled", "native", FB, ">=", 10.0),
    *(Target(t, f"compiled ref / native ({m})", "speedup", "compiled", "native", m, ">=", 1.0)
      for t in _THESIS for m in MODES),
)
# CUDA (issue 13, H200): native near the cuBLAS floor in fp32 and bf16, far ahead of the compiled
# reference, little memory, Triton within 1.5x of CUDA.
CUDA_TARGETS = tuple(
    t for dt in ("float32", "bfloat16") for t in (
        Target(row_key(_PAPER_T512, dt), "native fwd+bwd / GEMM floor", "floor", "native", None, FB, "<=", 1.3),
        Target(row_key(_PAPER_T512, dt), "compiled ref / native (fwd+bwd)", "speedup", "compiled", "native", FB, ">=", 3.0),
        Target(row_key(_PAPER_T512, dt), "peak extra memory native / eager ref (fwd+bwd)", "memory", "native", "eager",
               FB, "<=", 0.1),
        Target(row_key(_PAPER_T512, dt), "Triton / native (fwd+bwd)", "speedup", "triton", "native", FB, "<=", 1.5),
    ))
TARGETS = CPU_TARGETS  # backwards-compatible name


def targets_for(r: Results) -> tuple:
    """The targets of the device the results were measured on."""
    return CUDA_TARGETS if r.device == "cuda" else CPU_TARGETS


def target_rows(r: Results, targets=None):
    """[(target, value or None, "pass" | "FAIL" | "not measured")]; targets default to the device's."""
    out = []
    for t in (targets_for(r) if targets is None else targets):
        v = t.value(r)
        out.append((t, v, "not measured" if v is None else ("pass" if _OPS[t.op](v, t.bound) else "FAIL")))
    return out


def targets_table(r: Results, targets=None) -> str:
    rows = [[t.shape, t.what, f"{t.op} {t.bound:g}", "—" if v is None else f"{v:.3f}", status]
            for t, v, status in target_rows(r, targets)]
    return _table(["shape", "quantity", "target", "measured", "status"], rows)


def markdown(r: Results, json_path=None) -> str:
    commit = r.commit.get("id", "")[:10]
    dirty = " (dirty)" if r.commit.get("dirty") else ""
    parts = [
        "## Smooth-InfoNCE benchmarks",
        "",
        machine_line(r) + "  ",
        command_line(r, json_path) + "  ",
        f"Run {r.datetime or '?'}" + (f", commit {commit}{dirty}" if commit else "")
        + f"; each time is the {r.stat} over the rounds of one call (iterations=1).",
        "",
        "### Time per call (multiple of the GEMM floor of the same mode), speedups and memory",
        "",
        "fwd: the loss under no_grad; fwd+bwd: loss.backward() into fresh grads. GEMM floor fwd: "
        "P = C_flat @ W_catᵀ; fwd+bwd: that plus dP @ W_cat and dPᵀ @ C_flat (outputs preallocated). "
        + ("Peak extra memory: torch.cuda.max_memory_allocated − memory_allocated around one call."
         if r.device == "cuda" else "Peak extra memory: fresh process, VmHWM − VmRSS around one call after a warm-up."),
        "",
        time_table(r),
        "",
        "### Peak extra memory",
        "",
        "Each fwd+bwd figure includes the new .grad buffers of context, targets, weight, mu and logvar "
        "(last column), which every provider must allocate.",
        "",
        memory_table(r),
        "",
        "### Targets (" + ("issue 13, CUDA" if r.device == "cuda" else "issues 3 and 17, CPU") + ")",
        "",
        targets_table(r),
    ]
    if r.others:
        parts += ["", "### Other benchmarks", "",
                  _table(["benchmark", r.stat, "rounds"], [[n, fmt_time(s), str(k)] for n, s, k in r.others])]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------------- plot
def plot(r: Results, png_path) -> Path:
    """Three panels over the shapes: fwd+bwd and fwd time as a multiple of the floor, and peak
    extra memory of fwd+bwd; one bar per provider (missing cells are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("fwd+bwd time / GEMM floor", lambda s, p: r.over_floor(s, p, "fwd+bwd")),
              ("fwd time / GEMM floor", lambda s, p: r.over_floor(s, p, "fwd")),
              ("peak extra memory fwd+bwd (MiB)",
               lambda s, p: None if r.memory(s, p, "fwd+bwd") is None else r.memory(s, p, "fwd+bwd") / MIB)]
    n = max(1, len(r.shapes))
    fig, axes = plt.subplots(1, 3, figsize=(max(12, 1.1 * n * 3), 5.5), constrained_layout=True)
    providers = r.providers or PROVIDERS
    width = 0.8 / len(providers)
    for ax, (title, get) in zip(axes, panels):
        drawn = False
        for i, p in enumerate(providers):
            xs, ys = [], []
            for j, s in enumerate(r.shapes):
                v = get(s, p)
                if v is not None and v > 0:
                    xs.append(j + (i - (len(providers) - 1) / 2) * width)
                    ys.append(v)
            if xs:
                ax.bar(xs, ys, width, label=LABELS[p])
                drawn = True
        if drawn:
            ax.set_yscale("log")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        if "floor" in title:
            ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_title(title)
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_xticks(range(len(r.shapes)))
        ax.set_xticklabels(r.shapes, rotation=60, ha="right", fontsize=7)
    fig.suptitle(machine_line(r), fontsize=9)
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="pytest-benchmark JSON of benchmarks/ -> markdown tables + PNG")
    p.add_argument("json", help="the file written by --benchmark-json")
    p.add_argument("--stat", choices=STATS, default="min",
                   help="statistic of the rounds (default min: on a shared machine the noise only adds time)")
    p.add_argument("--md", help="write the markdown here too (default: <json>.md)")
    p.add_argument("--png", help="plot file (default: <json>.png)")
    p.add_argument("--no-png", action="store_true", help="do not draw the plot")
    a = p.parse_args(argv)
    path = Path(a.json)
    if not path.is_file():
        p.error(f"json: no such file {path}; run the benchmarks with --benchmark-json={path} first")
    r = load(path, a.stat)
    if not r.cells and not r.others:
        p.error(f"json: {path} holds no benchmarks (was the run made with --benchmark-disable or all skipped?)")
    md = markdown(r, path)
    sys.stdout.write(md)
    Path(a.md or path.with_suffix(".md")).write_text(md)
    if not a.no_png:
        out = plot(r, a.png or path.with_suffix(".png"))
        print(f"\nplot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
