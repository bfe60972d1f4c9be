# sim: set-up, tests, benchmarks and the demo. Every target is idempotent.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Build switches (pytorch_scatter style): FORCE_CUDA=1, FORCE_ONLY_CPU=1, TORCH_CUDA_ARCH_LIST, MAX_JOBS, DEBUG=1.
export MAX_JOBS ?= 2

.PHONY: setup system-deps venv deps build test bench bench-smoke demo fuzz sanitize gpu-check clean

setup: system-deps venv deps build

# espeak-ng and flite (CMU voices of real speakers) synthesise the syllable data set (sim data);
# chromium runs the HTML report's browser test (tests/sim_models/report/test_report_html.py). Each is
# installed only when missing.
system-deps:
	@missing=; command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	command -v flite >/dev/null 2>&1 || missing="$$missing flite"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "[setup] installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

venv:
	@[ -x $(PY) ] || python3 -m venv $(VENV)

# The stamp makes re-runs cheap; it is redone whenever requirements.txt changes.
deps: $(VENV)/.deps-stamp
$(VENV)/.deps-stamp: requirements.txt | venv
	set -o pipefail; $(PIP) install -q -r requirements.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PY) -c "import torch, torchaudio, triton, soundfile, sklearn, hypothesis, pytest_benchmark, xdist, transformers"
	touch $@

# Rebuilt when a source or a build switch changes (the stamp's name records FORCE_CUDA / FORCE_ONLY_CPU).
BUILD_STAMP := $(VENV)/.build-stamp-cuda$(FORCE_CUDA)-cpu$(FORCE_ONLY_CPU)-dbg$(DEBUG)-san$(SANITIZE)
build: $(BUILD_STAMP)
$(BUILD_STAMP): $(VENV)/.deps-stamp setup.py pyproject.toml $(wildcard csrc/*.cpp csrc/*.h csrc/cpu/*.cpp csrc/cpu/*.h csrc/cuda/*.cu csrc/cuda/*.cuh csrc/cuda/*.h)
	set -o pipefail; $(PIP) install -q --no-build-isolation -e . 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PY) -c "import sim_kernels._C"
	rm -f $(VENV)/.build-stamp-*
	touch $@

# Two pytest-xdist workers (one torch thread each: tests/conftest.py), each taking whole test files so a module's
# trained fixtures are made once; TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

# The tiny reproduction (docs/reproduce.md): data, β search, SIM and GIM over 2 seeds, probes, analyses, verdicts;
# prints the verdict table and writes runs/demo/<data>/report.html. Resumable: a rerun skips what is done.
# The paper's recordings when PAPER_DATA holds a clone of them (default: beside this repository, where CI keeps
# them), else words synthesised with espeak-ng; each in its own output folder. Progress: a bar per epoch on a
# terminal; captured to a file (make demo > demo.log 2>&1), one line per epoch and per step.
# DEMO_JOBS: training runs, probes and analyses side by side in that many processes (same results).
PAPER_DATA ?= ../shared/data/artificial-speech-dataset
DEMO_JOBS ?= 2
demo: setup
	@if [ -d "$(PAPER_DATA)/reshuffledv2" ]; then \
	  echo "[demo] data: the paper's recordings in $(PAPER_DATA) (CC BY-NC-SA 4.0, github.com/fdenoodt/Artificial-Speech-Dataset)"; \
	  $(PY) -m sim_models.cli reproduce --budget tiny --jobs $(DEMO_JOBS) --data "$(PAPER_DATA)" --out runs/demo/paper-recordings; \
	else \
	  echo "[demo] data: no recordings in $(PAPER_DATA) (PAPER_DATA=DIR: a clone of github.com/fdenoodt/Artificial-Speech-Dataset); synthesising words with espeak-ng"; \
	  $(PY) -m sim_models.cli reproduce --budget tiny --jobs $(DEMO_JOBS) --data runs/demo/data --out runs/demo/synthetic; \
	fi

bench: setup
	$(PY) -m pytest benchmarks -q --benchmark-only --benchmark-json=benchmarks/results.json
	$(PY) benchmarks/report.py benchmarks/results.json

# Quick check that the benchmark harness runs (nothing timed).
bench-smoke: setup
	$(PY) -m pytest benchmarks -q --benchmark-disable --sim-shapes=smoke --sim-no-memory -k "not compiled"

# Long fuzz campaign (the default test run uses a short budget).
fuzz: setup
	SIM_FUZZ_EXAMPLES=$${SIM_FUZZ_EXAMPLES:-3000} $(PY) -m pytest -q -p no:cacheprovider tests/sim_kernels/test_fuzz.py

# The CPU kernel built with AddressSanitizer + UndefinedBehaviorSanitizer in a copy of the tracked
# tree (build/sanitize), then the op tests run against it with the sanitizer runtimes preloaded (the CUDA kernel's
# host emulation, an uninstrumented test build, is left out: SIM_SKIP_CUDA_EMULATION=1).
SAN_TESTS ?= tests/sim_kernels/test_native_cpu.py tests/sim_kernels/test_native_cpu_math.py tests/sim_kernels/test_native_cpu_half.py tests/sim_kernels/test_numerics.py tests/sim_kernels/test_fuzz.py tests/sim_kernels/test_step_offsets_and_scores.py
sanitize: deps
	rm -rf build/sanitize && mkdir -p build/sanitize
	git ls-files -z | xargs -0 tar -cf - | tar -xf - -C build/sanitize
	cd build/sanitize && SANITIZE=1 FORCE_ONLY_CPU=1 $(CURDIR)/$(PY) setup.py -q build_ext --inplace
	cd build/sanitize && export LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  SIM_SKIP_CUDA_EMULATION=1 PYTHONPATH=$(CURDIR)/build/sanitize && \
	  $(CURDIR)/$(PY) -c "import sim_kernels._C as c, sys; f = c.__file__; print('sanitized extension:', f); sys.exit('build/sanitize' not in f)" && \
	  $(CURDIR)/$(PY) -m pytest -q -p no:cacheprovider $(SAN_TESTS)

# The GPU check: build for Hopper, the CUDA/Triton tests, compute-sanitizer, the CUDA
# benchmarks and a training step, time-boxed, in one call on a bare GPU machine (no venv, no
# network: its own python3), writing gpu_check.{json,md,png} and logs.tar.gz to $(OUT). Without a
# GPU it is a dry run: the stages that need none run, the rest are skipped with a reason.
# The dry run (in the venv) first installs the GPU image's pytest plugins (requirements-gpu-check.txt), so the
# stages run under the same plugins as on the GPU; on the GPU machine (no venv, offline) nothing is installed.
PYTHON ?= $(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,python3)
gpu-check: $(if $(filter $(VENV)/bin/python,$(PYTHON)),$(VENV)/.gpu-check-plugins-stamp)
	$(PYTHON) scripts/gpu_check.py $(if $(OUT),--out "$(OUT)") $(if $(STAGES),--stages "$(STAGES)")

$(VENV)/.gpu-check-plugins-stamp: requirements-gpu-check.txt | venv
	set -o pipefail; $(PIP) install -q -r requirements-gpu-check.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PY) -c "import pytest_timeout, xdist, pytest_cov, pytest_mock"
	touch $@

clean:
	rm -rf build *.egg-info sim_kernels/*.so
