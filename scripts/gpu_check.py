"""`make gpu-check`: build, test, sanitize and benchmark the CUDA and Triton kernels in one call.

Made for a bare, offline GPU machine with its own python3 (torch 2.11+, triton, nvcc) and a time
limit: every stage is time-boxed against one overall budget, a failed stage is recorded without
stopping the later ones. Results land in OUT and survive a kill of the check (scripts/gpu_check_runner.py):
logs/<stage>.log from the first second, gpu_check.json and gpu_check.md rewritten after every stage
(a stage in progress is recorded as "running"), then at the end gpu_check.png (optional: a plotting
error loses nothing else) and logs.tar.gz. Without a GPU (a dry run) the stages that need none still
run — the FORCE_CUDA=1 build, the CPU-emulation and Triton-interpreter tests, the benchmark harness on
CPU smoke shapes, the Triton compile check, the report — and the others are skipped with a reason.

    python scripts/gpu_check.py [--out DIR] [--budget SECONDS] [--stages a,b,...]

Environment: OUT (output folder; default build/gpu-check/out), SIM_GPU_CHECK_BUDGET (seconds,
default 470 with a GPU, 2400 for a dry run on a small CPU machine), MAX_JOBS (default: the CPU
count), SIM_GPU_FUZZ_EXAMPLES (default 30). --stages runs a subset (the rest are recorded as not
selected); without "build" the stages use this tree and the extension built in it.

Test stages run pytest with -v (a log cut by a kill names the test that was running), a JUnit file,
and a per-test timeout where pytest-timeout is installed (its flag depends on how: scripts/gpu_check_pytest.py;
`make gpu-check`'s dry run installs the GPU image's plugins, requirements-gpu-check.txt).

Stages, in priority order (cap in seconds with a GPU; a dry run multiplies the caps by
DRY_RUN_SLACK, since a 2-core machine compiles and interprets Triton far slower; each stage also
stops at the overall deadline, so whatever the budget cuts comes last):
    env            python/torch/triton/nvcc/GPU facts, the pytest plugins
    build          a copy of the tree, FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0, -Xptxas -v    (180)
    tests-cuda     tests/sim_kernels/test_cuda.py (on a GPU without the CPU host emulation) (90)
    tests-gpu      tests/sim_kernels/test_gpu.py but the fuzz                               (90)
    tests-triton   test_triton.py, test_triton_wide.py (Cz 2048 fp32, 1024 fp64), test_triton_launch.py (120)
    tests-numerics NaN/Inf, autograd matrix, export, extra targets, excluded negatives, lengths / anchor_mask,
                   step offsets and dot/cosine scores (180)
    bench          benchmarks/ on CUDA, fp32 + bf16, eager/native/triton/GEMM floor        (120)
    bench-wav2vec2 wav2vec 2.0's loss at wav2vec2-base shapes: native, Triton (and HF's formula where
                   transformers is installed)                                               (60)
    memcheck       compute-sanitizer --tool memcheck over scripts/gpu_sanitize_case.py     (60)
    synccheck      --tool synccheck (barrier and __syncwarp use)                            (45)
    initcheck      --tool initcheck (reads of uninitialised global memory)                  (45)
    racecheck      --tool racecheck (shared-memory hazards: the Triton kernels)             (45)
    fuzz-gpu       test_gpu.py's Hypothesis fuzz, no shrinking (scripts/gpu_check_hypothesis.py) (90)
    train-step     a sim-paper training step per loss backend                              (45)
    compile-check  Triton's compiler for sm_80 and sm_90, Cz up to 4096: resources, limits (90)
    bench-compiled the torch.compile provider, paper T=512 first                           (60)
    cpu-threads    the native CPU kernel at 1..16 threads (scripts/cpu_thread_scaling.py)  (30)
A sanitizer that gives no verdict line (the machine's runtime refuses it, e.g. under gVisor) is
recorded as skipped with its last line, not as a failure.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts import gpu_check_pytest as gp  # noqa: E402
from scripts import gpu_check_report as rep  # noqa: E402
from scripts.gpu_check_runner import Runner  # noqa: E402

_IGNORE_ANYWHERE = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info", ".hypothesis", ".pytest_cache",
                                          ".benchmarks")
_IGNORE_AT_ROOT = {".git", ".venv", "build", "runs", "data", ".whl", ".gl"}  # top-level only: sim_models/data is code


def _copy_ignore(directory: str, names: list[str]) -> set[str]:
    ignored = set(_IGNORE_ANYWHERE(directory, names))
    if Path(directory).resolve() == ROOT:
        ignored |= _IGNORE_AT_ROOT & set(names)
    return ignored


# (stage, pytest arguments, cap in seconds), in the order they run. The fuzz has its own stage (after
# the sanitizers) so that a slow fuzz cannot take the other GPU tests' results with it.
TEST_STAGES = [("tests-cuda", ["tests/sim_kernels/test_cuda.py"], 90),
               ("tests-gpu", ["tests/sim_kernels/test_gpu.py", "-k", "not fuzz"], 90),
               ("tests-triton", ["tests/sim_kernels/test_triton.py", "tests/sim_kernels/test_triton_wide.py",
                                 "tests/sim_kernels/test_triton_launch.py"], 120),
               ("tests-numerics", ["tests/sim_kernels/test_numerics.py", "tests/sim_kernels/test_autograd_matrix.py",
                                   "tests/sim_kernels/test_export.py", "tests/sim_kernels/test_extra_targets.py",
                                   "tests/sim_kernels/test_excluded_negatives.py",
                                   "tests/sim_kernels/test_lengths_and_anchor_mask.py",
                                   "tests/sim_kernels/test_step_offsets_and_scores.py"], 180)]
FUZZ_STAGE = ("fuzz-gpu", ["tests/sim_kernels/test_gpu.py", "-k", "fuzz"], 90)
PER_TEST_TIMEOUT = 60  # seconds (x the dry run's slack), with pytest-timeout where installed: a hung test fails alone
SANITIZERS = (("memcheck", 60), ("synccheck", 45), ("initcheck", 45), ("racecheck", 45))
ALL_STAGES = ("env", "build", *(n for n, _, _ in TEST_STAGES), "bench", "bench-wav2vec2", *(n for n, _ in SANITIZERS),
              FUZZ_STAGE[0],
              "train-step", "compile-check", "bench-compiled", "cpu-threads")


def _add_tests(total: dict, part: dict) -> None:
    for k in ("passed", "failed", "errors", "skipped"):
        total[k] += part[k]
    total["failures"] += part.get("failures", [])
    for reason, n in part.get("skip_reasons", {}).items():
        total["skip_reasons"][reason] = total["skip_reasons"].get(reason, 0) + n


DRY_RUN_SLACK = 4.0    # caps x this without a GPU
GPU_BUDGET, DRY_RUN_BUDGET = 470.0, 2400.0


def _probe_env(python: str, src: Path) -> dict:
    code = ("import json, os, platform, sys, torch\n"
            "d = {'python': platform.python_version(), 'executable': sys.executable, 'torch': torch.__version__,\n"
            "     'torch_cuda': torch.version.cuda, 'cuda_available': torch.cuda.is_available(), 'cpus': os.cpu_count()}\n"
            "try:\n    import triton; d['triton'] = triton.__version__\nexcept Exception as e:\n    d['triton'] = f'none ({e})'\n"
            "if d['cuda_available']:\n    p = torch.cuda.get_device_properties(0)\n"
            "    d.update(gpu=p.name, gpu_sms=p.multi_processor_count, gpu_memory_gib=round(p.total_memory / 2**30, 1),\n"
            "             capability='.'.join(map(str, torch.cuda.get_device_capability(0))))\n"
            "print(json.dumps(d))\n")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, cwd=src)
        env = json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as e:  # a broken interpreter is itself a result
        env = {"error": f"{type(e).__name__}: {e}"}
    try:  # how pytest-timeout is present decides its flag (scripts/gpu_check_pytest.py)
        out = subprocess.run([python, "-c", gp.PROBE], capture_output=True, text=True, timeout=60, cwd=src)
        env.update(json.loads(out.stdout.strip().splitlines()[-1]))
    except Exception as e:
        env.update(pytest_timeout=None, pytest_plugins=f"probe failed: {type(e).__name__}: {e}")
    try:
        env["cpu_model"] = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        env["cpu_model"] = None
    nvcc = shutil.which("nvcc")
    if nvcc:
        v = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
        env["nvcc"] = next((ln.split("release")[-1].strip() for ln in v.splitlines() if "release" in ln), v.strip()[-40:])
    else:
        env["nvcc"] = None
    env["compute_sanitizer"] = shutil.which("compute-sanitizer") or next(
        (str(p) for p in Path("/usr/local/cuda/bin").glob("compute-sanitizer") if p.exists()), None)
    try:
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        env["nvidia_smi"] = None
    return env


def _demangled(kernels: list[dict]) -> list[dict]:
    """Readable kernel names (c++filt, when there) beside the mangled ones."""
    tool = shutil.which("c++filt")
    if tool and kernels:
        try:
            out = subprocess.run([tool], input="\n".join(k["function"] for k in kernels), capture_output=True,
                                 text=True, timeout=20).stdout.splitlines()
            if len(out) == len(kernels):
                for k, name in zip(kernels, out):
                    k["mangled"], k["function"] = k["function"], name
        except (OSError, subprocess.SubprocessError):
            pass
    return kernels


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (dirty)" if dirty else "") if out.returncode == 0 else "unknown (no git)"
    except Exception:
        return "unknown (no git)"


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            pass
    return rows


def _test_stage(run: Runner, result: dict, name: str, args: list[str], cap: float, src: Path, env: dict,
                per_test: float) -> dict:
    """One pytest stage: -v (a hang names its test), a per-test timeout where pytest-timeout is there,
    a JUnit file; the counts come from the JUnit file, or from the -v log when the stage was cut."""
    junit = run.logs / f"{name}.xml"
    flags = [*gp.verbose_flags(), *gp.timeout_flags(result["env"].get("pytest_timeout"), per_test)]
    extra = ["-p", "scripts.gpu_check_hypothesis"] if name == FUZZ_STAGE[0] else []
    st = run.run(name, [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *extra, *flags, *args,
                        f"--junitxml={junit}"], cap, src, env)
    if st["status"] == "skipped":
        return st
    if junit.exists():
        t = rep.parse_junit(junit)
    else:  # killed before pytest wrote it: what the -v log says so far
        t = gp.parse_verbose_log((run.logs / f"{name}.log").read_text(errors="replace"))
        if t["running"]:
            st["reason"] = f"{st.get('reason', st['status'])}; running {t['running']}"
    st["summary"] = f"{t['passed']} passed, {t['failed']} failed, {t['errors']} errors, {t['skipped']} skipped"
    if st["status"] == "ok" and t["passed"] + t["failed"] + t["errors"] + t["skipped"] == 0:
        st["status"], st["reason"] = "failed", "no test ran"
    _add_tests(result["tests"], t)
    return st


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "build" / "gpu-check" / "out"))
    ap.add_argument("--budget", type=float, default=os.environ.get("SIM_GPU_CHECK_BUDGET"),
                    help=f"overall seconds, report included (default {GPU_BUDGET:.0f} with a GPU: ends within 8 "
                         f"minutes; {DRY_RUN_BUDGET:.0f} for a dry run)")
    ap.add_argument("--stages", default=None,
                    help="comma-separated stages to run (default all: " + ",".join(ALL_STAGES) + "); without "
                         "'build' the stages use this tree and its built extension")
    a = ap.parse_args(argv)
    chosen = set(ALL_STAGES if a.stages is None else [x.strip() for x in a.stages.split(",") if x.strip()])
    unknown = chosen - set(ALL_STAGES)
    if unknown:
        ap.error(f"--stages: unknown stage(s) {sorted(unknown)}; expected some of {','.join(ALL_STAGES)}")
    python = sys.executable
    out = Path(a.out).resolve()
    logs = out / "logs"  # under OUT from the first second: a killed check still returns them
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    t0 = time.monotonic()
    result = {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": _commit(),
              "python": python, "verdict": "incomplete: the check is running (or was killed)", "env": {},
              "stages": [], "tests": {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failures": [],
                                      "skip_reasons": {}}, "sanitizers": {}}

    def save():  # the summary after every stage: a partial JSON is a result
        result["elapsed_s"] = round(time.monotonic() - t0, 1)
        rep.write_summary(result, out)

    run = Runner(logs, DRY_RUN_BUDGET, on_change=save)
    result["stages"] = run.stages
    save()
    try:
        return _stages(run, result, chosen, python, t0, a.budget, save)
    except Exception as e:  # a bug of the check itself: still a report, with the error in it
        import traceback

        result["error"] = "".join(traceback.format_exception(e))[-4000:]
        print(result["error"], flush=True)
        return 1
    finally:
        result["elapsed_s"] = round(time.monotonic() - t0, 1)
        bad = [s["name"] for s in run.stages if s["status"] in ("failed", "timeout", "killed", "running")]
        if (result["verdict"].startswith("incomplete") or "error" in result) and not bad:
            bad = ["(the check stopped early)"]
        result["verdict"] = "ok" if not bad else "failed: " + ", ".join(bad)
        paths = rep.write_outputs(result, out)  # JSON, then markdown, then the plot (optional)
        try:
            with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
                tar.add(logs, arcname="logs")
        except OSError as e:
            print(f"[gpu-check] logs.tar.gz not written: {e}", flush=True)
        print((out / "gpu_check.md").read_text())
        print(f"[gpu-check] {result['verdict']}; wrote {', '.join(p.name for p in paths.values())}, logs/ to {out}",
              flush=True)


def _stages(run: Runner, result: dict, chosen: set, python: str, t0: float, budget_arg, save) -> int:
    logs = run.logs
    env = _probe_env(python, ROOT)
    gpu = bool(env.get("cuda_available"))
    budget = float(budget_arg) if budget_arg is not None else (GPU_BUDGET if gpu else DRY_RUN_BUDGET)
    run.deadline, run.slack = t0 + budget, 1.0 if gpu else DRY_RUN_SLACK
    result.update(budget_s=budget, env=env, dry_run=not gpu)
    print(f"[gpu-check] env: {json.dumps(env)}", flush=True)
    run.record({"name": "env", "status": "failed" if "error" in env else "ok", "seconds": round(time.monotonic() - t0, 1),
                "summary": env.get("nvidia_smi") or "no GPU visible: dry run"})
    no_gpu = "no GPU visible (torch.cuda.is_available() is False): dry run"

    def want(name):
        if name in chosen:
            return True
        run.skip(name, "not selected (--stages)")
        return False

    # build -----------------------------------------------------------------------------------------------
    jobs = os.environ.get("MAX_JOBS") or str(os.cpu_count() or 2)
    if want("build"):
        src = ROOT / "build" / "gpu-check" / "src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(ROOT, src, ignore=_copy_ignore)
        # SIM_SELFTEST_OPS=1: the test-only op _shared_math_selftest, so test_cuda runs the header's math on the GPU.
        build_env = {"FORCE_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "9.0", "MAX_JOBS": jobs, "SIM_PTXAS_VERBOSE": "1",
                     "SIM_SELFTEST_OPS": "1"}
        if env.get("nvcc") is None:
            run.skip("build", "nvcc not found: the CUDA kernel cannot be compiled here")
            build_env = {"FORCE_ONLY_CPU": "1", "MAX_JOBS": jobs, "SIM_SELFTEST_OPS": "1"}
            st = run.run("build-cpu", [python, "setup.py", "-q", "build_ext", "--inplace"], 600, src, build_env)
        else:
            st = run.run("build", [python, "setup.py", "build_ext", "--inplace"], 180, src, build_env)
            st["summary"] = f"FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS={jobs}"
            if (logs / "build.log").exists():
                result["ptxas"] = _demangled(rep.parse_ptxas((logs / "build.log").read_text(errors="replace")))
            save()
        built = st["status"] == "ok"
    else:  # this tree and the extension built in it
        src, built = ROOT, True
    py_env = {"PYTHONPATH": str(src), "PYTHONUNBUFFERED": "1"}

    # correctness tests: one stage per file, so a slow file cannot take the others' JUnit with it ------------
    test_env = {**py_env, "SIM_GPU_FUZZ_EXAMPLES": os.environ.get("SIM_GPU_FUZZ_EXAMPLES", "30"),
                "FORCE_CUDA": "1" if env.get("nvcc") else "0",  # test_cuda then checks the CUDA kernels registered
                "SIM_SELFTEST_OPS": "1"}
    gpu_env = {**py_env, "TRITON_INTERPRET": "0"} if gpu else py_env  # compiled Triton on the GPU
    test_env.update(gpu_env)
    # The per-test timeout counts fixture set-up too (test_cuda's host emulation compiles a module in its
    # first test: about 2 minutes on 2 cores), so it scales with the dry run's slack like the caps. On a GPU
    # the emulation is skipped (SIM_SKIP_CUDA_EMULATION=1): it is CPU-only, CI runs it, and the GPU's
    # minutes go to the GPU tests.
    per_test = PER_TEST_TIMEOUT * run.slack
    for name, args, cap in TEST_STAGES:
        if not want(name):
            continue
        if not built:
            run.skip(name, "the build failed")
            continue
        # tests-numerics: its host-emulation cases run in `make test` already; here the CUDA and Triton ones
        skip_emulation = (gpu and name == "tests-cuda") or name == "tests-numerics"
        stage_env = {**test_env, "SIM_SKIP_CUDA_EMULATION": "1"} if skip_emulation else test_env
        _test_stage(run, result, name, args, cap, src, stage_env, per_test)
        save()

    # benchmarks --------------------------------------------------------------------------------------------
    jsonl = logs / "bench.jsonl"
    bench_common = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only", f"--sim-jsonl={jsonl}"]
    gpu_opts = ["--sim-device=cuda", "--sim-dtypes=float32,bfloat16", "--sim-shapes=gpu", "--sim-budget=0.25",
                "--sim-min-rounds=5", "--sim-max-rounds=40"]
    if not want("bench"):
        pass
    elif not built:
        run.skip("bench", "the build failed")
    elif gpu:
        run.run("bench", [*bench_common, "benchmarks/test_smooth_infonce.py", *gpu_opts, "-k", "not compiled"],
                120, src, gpu_env)
    else:  # the harness on the CPU, smoke shapes, nothing timed for real
        run.run("bench", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "benchmarks/test_smooth_infonce.py",
                          "--sim-shapes=smoke", "--sim-no-memory", "--sim-budget=0.05", "--sim-min-rounds=2",
                          "--sim-max-rounds=3", "-k", "not compiled", f"--sim-jsonl={jsonl}"], 120, src, py_env)
    if not want("bench-wav2vec2"):
        pass
    elif not built:
        run.skip("bench-wav2vec2", "the build failed")
    elif gpu:
        run.run("bench-wav2vec2", [*bench_common, "benchmarks/test_wav2vec2_loss.py", "--sim-device=cuda",
                                   "--sim-w2v-shapes=w2v2-base", "--sim-budget=0.25", "--sim-min-rounds=5",
                                   "--sim-max-rounds=40", "-k", "not compiled"], 60, src, gpu_env, min_needed=20)
    else:  # the harness on the CPU, the small shape, nothing timed for real
        run.run("bench-wav2vec2", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                   "benchmarks/test_wav2vec2_loss.py", "--sim-w2v-shapes=w2v2-small", "--sim-no-memory",
                                   "--sim-budget=0.05", "--sim-min-rounds=2", "--sim-max-rounds=3", "-k",
                                   "not compiled", f"--sim-jsonl={jsonl}"], 60, src, py_env)

    # sanitizers: memcheck (addresses), synccheck (__syncwarp / barrier use: the CUDA kernels' lane-0
    # writes rest on it), initcheck (reads of uninitialised global memory), racecheck (shared memory:
    # the Triton kernels' tl.dot operands) ----------------------------------------------------------------
    san = env.get("compute_sanitizer")
    for tool, cap in SANITIZERS:
        if not want(tool):
            continue
        if not gpu:
            run.skip(tool, no_gpu)
        elif not built:
            run.skip(tool, "the build failed")
        elif not san:
            run.skip(tool, "compute-sanitizer not found on PATH or in /usr/local/cuda/bin")
        else:
            _sanitizer_stage(run, result, tool, cap, san, python, src, gpu_env)
        save()

    # the fuzz, bounded (scripts/gpu_check_hypothesis.py: no shrinking) -------------------------------------
    name, args, cap = FUZZ_STAGE
    if want(name):
        if not gpu:
            run.skip(name, no_gpu)
        elif not built:
            run.skip(name, "the build failed")
        else:  # two tests (native, triton): each may take half the cap before pytest-timeout stops it
            _test_stage(run, result, name, args, cap, src, test_env, cap / 2 - 5)
        save()

    if want("train-step"):
        if built and gpu:
            run.run("train-step", [*bench_common, "benchmarks/test_train_step.py", "--sim-device=cuda", "-k",
                                   "sim-paper"], 45, src, gpu_env, min_needed=20)
        else:
            run.skip("train-step", (no_gpu + " (the CPU training step is timed by `make bench`)") if built
                     else "the build failed")

    # Triton's real compiler for sm_80 and sm_90 at wide targets: resources per kernel, and a failure when a
    # kernel needs more shared memory than a block has (sim_kernels/triton/compile_check.py; no GPU needed)
    res_json = logs / "triton_resources.json"
    if want("compile-check"):
        st = run.run("compile-check", [python, "-m", "sim_kernels.triton.compile_check", "--arch", "80,90",
                                       "--dtypes", "fp32,bf16,fp64", "--cz", "256,1024,2048,4096",
                                       "--kernels", "anchor,anchor+grad,target", "--json", str(res_json)], 90, src, {**py_env, "TRITON_INTERPRET": "0"},
                     min_needed=30)
        if res_json.exists():
            result["triton_resources"] = json.loads(res_json.read_text())
            over = [r for r in result["triton_resources"] if r.get("over_limit")]
            st["summary"] = f"{len(result['triton_resources'])} kernels compiled, {len(over)} over the shared-memory limit"
        save()

    if want("bench-compiled"):
        if built and gpu:
            run.run("bench-compiled", [*bench_common, "benchmarks/test_smooth_infonce.py", *gpu_opts, "-k", "compiled"],
                    60, src, gpu_env, min_needed=30)
        else:
            run.skip("bench-compiled", no_gpu if built else "the build failed")
    result["bench_rows"] = [r for r in _read_jsonl(jsonl) if "train_step" not in r and r.get("loss") != "wav2vec2"]
    result["wav2vec2_rows"] = [r for r in _read_jsonl(jsonl) if r.get("loss") == "wav2vec2"]
    result["train_rows"] = [r for r in _read_jsonl(jsonl) if "train_step" in r]
    result["bench_machine"] = {"cpu_model": env.get("cpu_model", "?"), "logical_cores": env.get("cpus"),
                               "torch_version": env.get("torch"), "device": "cuda" if gpu else "cpu",
                               "gpu": env.get("gpu"), "gpu_sms": env.get("gpu_sms"),
                               "gpu_memory_gib": env.get("gpu_memory_gib"), "cuda_version": env.get("torch_cuda"),
                               "torch_threads": next((r.get("threads") for r in result["bench_rows"]), "?"),
                               "command": "make gpu-check"}
    save()

    # CPU thread scaling ----------------------------------------------------------------------------------
    threads_json = logs / "threads.json"
    if want("cpu-threads"):
        if built:
            shape = "B8-T512-C512-K10-N10" if gpu else "B2-T33-C16-K3-N4"
            run.run("cpu-threads", [python, "scripts/cpu_thread_scaling.py", "--shape", shape, "--json",
                                    str(threads_json)], 30, src, py_env, min_needed=15)
        else:
            run.skip("cpu-threads", "the build failed")
    result["thread_rows"] = json.loads(threads_json.read_text()) if threads_json.exists() else []

    bad = [s["name"] for s in run.stages if s["status"] in ("failed", "timeout")]
    result["verdict"] = "ok" if not bad else "failed: " + ", ".join(bad)
    return 0 if not bad else 1


def _sanitizer_stage(run: Runner, result: dict, tool: str, cap: float, san: str, python: str, src: Path,
                     env: dict) -> None:
    cmd = [san, "--tool", tool, "--error-exitcode", "7"]
    if tool == "memcheck":
        cmd += ["--leak-check", "no"]
    st = run.run(tool, [*cmd, python, "scripts/gpu_sanitize_case.py"], cap, src,
                 {**env, "PYTORCH_NO_CUDA_MEMORY_CACHING": "1"})
    log = run.logs / f"{tool}.log"
    log_text = log.read_text(errors="replace") if log.exists() else ""
    verdict = rep.parse_sanitizer(log_text)
    result["sanitizers"][tool] = verdict
    if verdict["errors"] is None and st["status"] == "failed":
        # No verdict line: the tool did not run on this machine (compute-sanitizer refuses the device on
        # the gVisor runtime). A limit of the machine, not a finding of ours.
        last = next((ln for ln in reversed(log_text.splitlines()) if ln.strip()), "no output")
        st["status"], st["reason"] = "skipped", f"compute-sanitizer gave no verdict: {last.strip()[:160]}"
    else:
        st["summary"] = "; ".join(verdict["summary_lines"]) or "no summary line"


if __name__ == "__main__":
    sys.exit(main())
