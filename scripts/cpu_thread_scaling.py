"""Thread scaling of the native CPU kernel: fwd+bwd of one shape at 1, 2, 4, 8, 16 torch threads.

    python scripts/cpu_thread_scaling.py --shape B8-T512-C512-K10-N10 --json threads.json

Counts above the machine's CPU count are left out. Each count: one warm-up call, then the minimum
of ``--rounds`` calls (perf_counter; the grads are cleared outside the timed region). Writes a
JSON list of {"shape", "threads", "seconds", "rounds"}; `make gpu-check` runs it on the GPU
machine's 16 cores (issue 17).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._providers import make_step, unavailable_reason  # noqa: E402
from benchmarks._shapes import build_inputs, shape_from_id  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="B8-T512-C512-K10-N10")
    ap.add_argument("--threads", default="1,2,4,8,16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", required=True)
    a = ap.parse_args(argv)
    reason = unavailable_reason("native", "cpu")
    if reason:
        print(reason, file=sys.stderr)
        return 2
    shape = shape_from_id(a.shape)
    counts = [int(t) for t in a.threads.split(",") if int(t) <= (os.cpu_count() or 1)]
    x = build_inputs(shape, requires_grad=True)
    step = make_step("native", "fwd+bwd", x)
    rows = []
    for n in counts:
        torch.set_num_threads(n)
        x.clear_grads()
        step()
        times = []
        for _ in range(a.rounds):
            x.clear_grads()
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        rows.append({"shape": shape.id, "threads": n, "seconds": min(times), "rounds": a.rounds})
        print(f"{shape.id} threads={n}: {min(times) * 1e3:.1f} ms", flush=True)
        Path(a.json).write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
