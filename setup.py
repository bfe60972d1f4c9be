"""Build sim_kernels._C: one extension holding the op schemas and every native kernel.

Build switches (as in pytorch_scatter):
  FORCE_CUDA=1          compile csrc/cuda/*.cu even when no GPU is visible (CI does this)
  FORCE_ONLY_CPU=1      never compile the CUDA sources
  TORCH_CUDA_ARCH_LIST  CUDA architectures, default "8.0;9.0"
  MAX_JOBS              parallel compile jobs (ninja)
  DEBUG=1               -O0 -g, no NDEBUG
  SANITIZE=1            AddressSanitizer + UndefinedBehaviorSanitizer (CPU sources only)
  SIM_NO_EXTENSION=1    install the pure-Python package only (backend="auto" then uses the reference)
  SIM_PTXAS_VERBOSE=1   pass -Xptxas -v to nvcc (registers, shared memory, spills per kernel; make gpu-check)
  SIM_SELFTEST_OPS=1    add the test-only op _shared_math_selftest (CUDA; make gpu-check sets it)
"""
import glob
import os

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> bool:
    return os.environ.get(name, "0") not in ("", "0", "false", "False")


def _want_cuda(cuda_home) -> bool:
    import torch

    if _flag("FORCE_ONLY_CPU"):
        return False
    if _flag("FORCE_CUDA"):
        if cuda_home is None:
            raise RuntimeError("FORCE_CUDA=1 but no CUDA toolkit was found (set CUDA_HOME)")
        return True
    return cuda_home is not None and torch.cuda.is_available()


def _cuda_home_from_nvcc():
    """torch derives CUDA_HOME from `which nvcc`; a wrapper script in /usr/local/bin would give
    /usr/local. Resolve the toolkit that nvcc really runs instead (wrapper scripts included)."""
    import re
    import shutil

    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    real = os.path.realpath(nvcc)
    try:
        with open(real, "rb") as f:
            head = f.read(512).decode("utf-8", "ignore")
        m = re.search(r"(/\S+)/bin/nvcc", head) if head.startswith("#!") else None
        if m:
            real = m.group(1) + "/bin/nvcc"
    except OSError:
        pass
    home = os.path.dirname(os.path.dirname(real))
    return home if os.path.isdir(os.path.join(home, "include")) else None


def _extensions():
    if _flag("SIM_NO_EXTENSION"):
        return [], {}
    if not os.environ.get("CUDA_HOME") and not os.environ.get("CUDA_PATH") and not _flag("FORCE_ONLY_CPU"):
        home = _cuda_home_from_nvcc()
        if home:
            os.environ["CUDA_HOME"] = home
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    debug = _flag("DEBUG")
    sanitize = _flag("SANITIZE")
    opt = ["-O0", "-g"] if debug or sanitize else ["-O3"]
    cxx = ["-std=c++20", "-fopenmp", *opt]
    link = ["-fopenmp"]
    if sanitize:
        cxx += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
        link += ["-fsanitize=address,undefined"]
    if not debug:
        cxx.append("-DNDEBUG")

    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    # SIM_SELFTEST_OPS=1 adds the test-only op _shared_math_selftest (the GPU check's build); never shipped.
    define_macros = [("SIM_SELFTEST_OPS", None)] if _flag("SIM_SELFTEST_OPS") else []
    extra = {"cxx": cxx}
    ext_cls = CppExtension
    if _want_cuda(CUDA_HOME):
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        extra["nvcc"] = ["-std=c++20", "--expt-relaxed-constexpr", "-lineinfo", *(["-O0", "-G"] if debug else ["-O3"])]
        if _flag("SIM_PTXAS_VERBOSE"):
            extra["nvcc"].append("-Xptxas=-v")
        define_macros.append(("SIM_WITH_CUDA", None))
        ext_cls = CUDAExtension
    ext = ext_cls(
        name="sim_kernels._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        define_macros=define_macros,
        extra_compile_args=extra,
        extra_link_args=link,
        py_limited_api=False,
    )
    return [ext], {"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)}


ext_modules, cmdclass = _extensions()

setup(
    packages=find_packages(include=["sim_kernels", "sim_kernels.*", "sim_models", "sim_models.*"]),
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
