"""The package's layout rules, checked on the source (docs/architecture.md states them).

* Arrows point down: a module may import from its own layer or from a layer listed before it in ``LAYERS``
  (bottom first), never from one listed after it. Every module of sim_models belongs to one layer.
* No import cycle between modules (inside a layer too).
* Imports inside function bodies only with a comment that says why: ``deferred`` (a heavy optional
  dependency) or ``cycle``.
* Following the config from `sim train` into the trainer enters each file at most twice.
"""
from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[2] / "sim_models"

# Bottom first. A module belongs to the longest entry its dotted name (below sim_models) starts with.
LAYERS = (
    "util",                      # atomic writes, escaping, progress lines, test hooks: no sim_models imports
    "config",                    # schema, encoder layers, the old flat format, presets, files
    "data",                      # audio I/O, synthesis, data sets, segmentation, labelled syllables
    "model",                     # stages, the greedy model, objectives, the encode loop, global-batch draws
    "rundir",                    # checkpoint, logs, run info, crash safety, loading a run
    "training.optim_step",       # the optimiser step
    "training.mixed_precision",  # train.autocast
    "training.strategies",       # one file per way of running (single process, data / module parallel)
    "training.trainer",          # the one loop
    "training.launch",           # the one launcher: data, trainer for this process, fit, run info
    "evaluation",                # linear probes and protocols
    "analysis",                  # numbers and figures from a loaded run; claims and verdicts
    "report",                    # pages: markdown and HTML, the browser check
    "experiments",               # workflows that train many runs: β search, reproduce
    "cli",                       # argv -> one call each
)


def _modules() -> dict:
    """{dotted name below sim_models ("" for the package itself): path}."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def layer_of(name: str) -> int:
    """Index of ``name``'s layer in LAYERS (the longest matching entry); KeyError when it has none."""
    best = None
    for i, layer in enumerate(LAYERS):
        if name == layer or name.startswith(layer + "."):
            if best is None or len(layer) > len(LAYERS[best]):
                best = i
    if best is None:  # a package whose modules are split over several layers (training/__init__.py): the lowest
        below = [i for i, layer in enumerate(LAYERS) if layer.startswith(name + ".")]
        if not below:
            raise KeyError(name)
        best = min(below)
    return best


def _imports(path: Path, modules: dict) -> list:
    """(line, imported module below sim_models, inside a function?, source line) for each sim_models import."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                in_function.add(id(sub))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; sim_models imports are absolute")
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            # `from pkg import module` imports the module (the package's __init__ only on the way)
            names = [n for n in subs if n[len("sim_models."):] in modules] or [node.module]
        for n in names:
            if n == "sim_models" or not n.startswith("sim_models."):
                continue
            target = n[len("sim_models."):]
            if target in modules:
                out.append((node.lineno, target, id(node) in in_function, lines[node.lineno - 1]))
    return out


def _graph() -> dict:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer():
    missing = []
    for n in _modules():
        try:
            n and layer_of(n)
        except KeyError:
            missing.append(n)
    assert not missing, f"modules outside every layer of LAYERS: {missing}"


def test_imports_point_down():
    climbs = []
    for name, imports in _graph().items():
        if not name:
            continue
        for line, target, _, text in imports:
            if layer_of(target) > layer_of(name):
                climbs.append(f"sim_models/{name.replace('.', '/')}.py:{line} ({LAYERS[layer_of(name)]}) imports "
                              f"{target} ({LAYERS[layer_of(target)]}): {text.strip()}")
    assert not climbs, "imports that climb up the layer order:\n" + "\n".join(climbs)


def test_no_import_cycle():
    graph = {n: sorted({t for _, t, _, _ in imps if t != n}) for n, imps in _graph().items()}
    state, stack, cycles = {}, [], []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for t in graph.get(n, []):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n)
    assert not cycles, f"import cycles: {cycles}"


def test_imports_inside_functions_say_why():
    bare = [f"{name}:{line}: {text.strip()}" for name, imps in _graph().items() for line, _, inside, text in imps
            if inside and "deferred" not in text and "cycle" not in text]
    assert not bare, "sim_models imports inside function bodies without a reason:\n" + "\n".join(bare)


# -- following the config from `sim train` into the trainer ----------------------------------------------------
_FOLLOWED_DUNDERS = ("__init__", "__post_init__", "__call__")
_INLINE = ("<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>", "<lambda>")


class _Stop(BaseException):  # not an Exception: the trainer must not record it as a failure
    pass


def file_entries(argv, start_at, stop_at) -> dict:
    """{file below sim_models: entries} while `sim ``argv``` runs from ``start_at`` (the command's handler: parsing
    the command line is not part of the path) until ``stop_at`` (a function) is called.

    An entry is a reader opening the file: a call into it from another sim_models file, counted once per calling
    function (the calls one function makes into one file are read in one visit; loops, comprehensions and
    repeated calls add nothing). Calls from outside sim_models (argparse, dataclass-generated __init__) count
    for the nearest sim_models caller. Not entries: reading a record (a method of a dataclass instance such as
    Config or StageConfig) and dunder protocol methods (``len(dataset)``), which a reader does not follow."""
    from sim_models.cli import main
    root = str(PACKAGE) + "/"
    seen, entries, started = set(), {}, []

    def profile(frame, event, arg):
        if event != "call":
            return
        if frame.f_code is stop_at.__code__:
            raise _Stop
        if frame.f_code is start_at.__code__:
            started.append(True)
        if not started:
            return
        here = frame.f_code.co_filename
        if not here.startswith(root):
            return
        name = frame.f_code.co_name
        owner = frame.f_locals.get("self", frame.f_locals.get("cls"))
        if (name.startswith("__") and name not in _FOLLOWED_DUNDERS) or (
                owner is not None and dataclasses.is_dataclass(owner) and name not in _FOLLOWED_DUNDERS):
            return
        back = frame.f_back
        while back is not None and (not back.f_code.co_filename.startswith(root) or back.f_code.co_name in _INLINE):
            back = back.f_back
        if back is None:
            return
        mine, caller = here[len(root):], back.f_code.co_filename[len(root):]
        if caller != mine and (back.f_code, mine) not in seen:
            seen.add((back.f_code, mine))
            entries[mine] = entries.get(mine, 0) + 1

    sys.setprofile(profile)
    try:
        main(argv)
    except _Stop:
        pass
    finally:
        sys.setprofile(None)
    return entries


def test_following_the_config_into_the_trainer_enters_each_file_at_most_twice(tmp_path):
    import torch

    from sim_models.cli import train
    from sim_models.training.trainer import Trainer
    data = tmp_path / "wavs"
    data.mkdir()
    import soundfile as sf
    for i in range(4):
        sf.write(data / f"u{i}.wav", torch.randn(2560, generator=torch.Generator().manual_seed(i)).numpy() * 0.1, 16000)
    argv = ["train", "--config", "tiny", "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress",
            "data.length=2560", "train.batch_size=2"]
    entries = file_entries(argv, train.run, Trainer._run)
    assert "training/trainer.py" in entries and "config/files.py" in entries
    over = {f: n for f, n in entries.items() if n > 2}
    assert not over, f"files entered more than twice from `sim train` to the first step: {over} (all: {entries})"
