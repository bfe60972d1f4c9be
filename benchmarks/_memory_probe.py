"""Peak extra memory of one loss step, measured in a fresh process.

    python -m benchmarks._memory_probe --shape B8-T512-C512-K10-N10 --provider eager --mode fwd+bwd
    python -m benchmarks._memory_probe --loss wav2vec2 --shape w2v2-base --provider hf-eager --mode fwd+bwd

prints one JSON line. Method ("vmhwm"): build the inputs, run one warm-up step (torch.compile
compiles here), clear the grads, read the resident set size VmRSS, reset the kernel's
high-water mark (write "5" to /proc/self/clear_refs), run one step, read VmHWM:
peak_extra_bytes = VmHWM - VmRSS. It counts everything the step allocates and holds at its peak:
saved activations, scratch, the new .grad buffers (reported apart as grad_bytes: every provider
must allocate them) and the loss. When clear_refs is not writable
(not Linux, or a locked-down /proc) it falls back to ("ru_maxrss") the getrusage peak minus the RSS
before the warm-up, which also counts the warm-up (and compilation) and so overstates.

glibc would keep freed warm-up memory mapped and hand it back to the measured step without the
RSS moving, hiding real allocations; the parent therefore starts the probe with
MALLOC_MMAP_THRESHOLD_=65536, which makes every allocation of 64 KiB or more its own mmap,
unmapped on free (it also switches off glibc's dynamic threshold).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MMAP_THRESHOLD = 65536


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _step(loss: str, shape_id: str, provider: str, mode: str):
    """(inputs, step) of the SIM loss benchmarks (benchmarks/_providers.py) or wav2vec 2.0's (_wav2vec2.py)."""
    if loss == "wav2vec2":
        from ._wav2vec2 import W2V_SHAPES, build, make_step as w2v_step

        x = build(W2V_SHAPES[shape_id], requires_grad=(mode == "fwd+bwd"))
        return x, w2v_step(provider, mode, x)
    from ._providers import make_step
    from ._shapes import build_inputs, shape_from_id

    x = build_inputs(shape_from_id(shape_id), requires_grad=(mode == "fwd+bwd"))
    return x, make_step(provider, mode, x)


def probe(shape_id: str, provider: str, mode: str, threads: int, loss: str = "smooth_infonce") -> dict:
    import torch

    torch.set_num_threads(threads)
    x, step = _step(loss, shape_id, provider, mode)
    rss0 = _status_kib("VmRSS") if os.path.exists("/proc/self/status") else None
    step()  # warm-up
    x.clear_grads()
    gc.collect()
    if rss0 is not None and _reset_hwm():
        base = _status_kib("VmRSS")
        loss = step()
        peak = _status_kib("VmHWM")
        method = "vmhwm"
    else:  # getrusage: KiB on Linux, bytes on macOS
        unit = 1 if sys.platform == "darwin" else 1024
        base = (rss0 or 0) * 1024 // unit
        loss = step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit // 1024
        method = "ru_maxrss (includes warm-up and compilation)"
    grad_bytes = sum(t.grad.numel() * t.grad.element_size() for t in x.leaves() if t.grad is not None)
    return {"shape": shape_id, "provider": provider, "mode": mode, "threads": threads, "method": method,
            "baseline_rss_bytes": base * 1024, "peak_rss_bytes": peak * 1024,
            "peak_extra_bytes": max(0, peak - base) * 1024, "grad_bytes": grad_bytes, "loss": float(loss)}


def measure(shape_id: str, provider: str, mode: str, threads: int, timeout: float = 1800.0,
            loss: str = "smooth_infonce") -> dict:
    """Run the probe in a fresh interpreter and return its JSON record (raises with its stderr on failure)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
    env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "benchmarks._memory_probe", "--shape", shape_id, "--provider", provider,
           "--mode", mode, "--threads", str(threads), "--loss", loss]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"memory probe failed ({' '.join(cmd)}), exit {r.returncode}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", required=True, help="a shape id such as B8-T512-C512-K10-N10")
    p.add_argument("--loss", default="smooth_infonce", choices=("smooth_infonce", "wav2vec2"))
    p.add_argument("--provider", required=True,
                   choices=("eager", "compiled", "native", "hf-eager", "hf-compiled"))
    p.add_argument("--mode", required=True, choices=("fwd", "fwd+bwd"))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    a = p.parse_args(argv)
    import torch

    print(json.dumps(probe(a.shape, a.provider, a.mode, a.threads or torch.get_num_threads(), a.loss)))


if __name__ == "__main__":
    main()
