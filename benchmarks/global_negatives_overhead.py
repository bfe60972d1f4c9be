"""Step time of train.negatives=global against local: P gloo processes on this machine, in one run.

    python benchmarks/global_negatives_overhead.py [--config sim-small] [--steps 12] [--reps 3] [--procs 2]
        [--json OUT.json]

Each repetition trains a fresh data-parallel run of ``--steps`` steps in each mode, the modes alternating
(local, global, local, global, ...) so that drifts of a shared machine hit both; the time per step is the
run's wall time after its first two steps (warm-up), measured on rank 0 between barriers. Prints the
median step time of each mode and their ratio (global / local): only the ratio means anything on a noisy
machine. Synthetic audio (no data set needed).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, procs, port, config, negatives, steps, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(procs),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from sim_models.config import apply_overrides, get_config
    from sim_models.data.datasets import TensorAudioDataset
    from sim_models.training.strategies.env import init_distributed, shutdown
    from sim_models.training.launch import DataParallelTrainer

    info = init_distributed("gloo", timeout_s=120)
    cfg = apply_overrides(get_config(config), [f"train.negatives={negatives}", "train.checkpoint_every=0",
                                               "train.validate=false", "train.log_every=1000"])
    audio = torch.randn(cfg.train.batch_size * (steps + 2), cfg.data.length, generator=torch.Generator().manual_seed(0))
    times = []
    with tempfile.TemporaryDirectory() as run_dir:
        for n in (2, steps + 2):  # warm-up run of 2 steps, then the timed run; the difference is `steps` steps
            cfg.train.max_steps = n
            trainer = DataParallelTrainer(cfg, TensorAudioDataset(audio), Path(run_dir) / str(n), progress=False,
                                          tensorboard=False, info=info)
            dist.barrier()
            t0 = time.perf_counter()
            trainer.fit()
            dist.barrier()
            times.append(time.perf_counter() - t0)
    if rank == 0:
        Path(out).write_text(json.dumps({"per_step_s": (times[1] - times[0]) / steps}))
    shutdown()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="sim-small")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    per_step = {"local": [], "global": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.reps):
            for mode in ("local", "global"):
                out = Path(tmp) / f"{mode}{rep}.json"
                mp.start_processes(_worker, args=(a.procs, _free_port(), a.config, mode, a.steps, str(out)),
                                   nprocs=a.procs, start_method="spawn")
                per_step[mode].append(json.loads(out.read_text())["per_step_s"])
                print(f"rep {rep} {mode:6s} {per_step[mode][-1] * 1e3:8.1f} ms/step", flush=True)
    med = {m: statistics.median(v) for m, v in per_step.items()}
    ratios = [g / l for g, l in zip(per_step["global"], per_step["local"])]
    result = {"config": a.config, "procs": a.procs, "steps": a.steps, "per_step_s": per_step,
              "median_s": med, "ratio_global_over_local": ratios, "median_ratio": statistics.median(ratios),
              "torch": torch.__version__, "cpus": os.cpu_count()}
    print(f"median: local {med['local'] * 1e3:.1f} ms/step, global {med['global'] * 1e3:.1f} ms/step, "
          f"global / local = {result['median_ratio']:.3f} (runs: {', '.join(f'{r:.3f}' for r in ratios)})")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
