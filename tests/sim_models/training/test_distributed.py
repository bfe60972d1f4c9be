"""The distributed strategies (sim_models/training/strategies/) on this machine: 2 processes on localhost, gloo, tiny models, a few steps.

* Data parallel, global negatives (the default): 2 and 3 processes end with the parameters (and log the
  losses) of the single-process Trainer on the same global batches (SIM, GIM, the crop, sequential, end to
  end), also after both were SIGKILLed and resumed.
* Data parallel, local negatives: 2 processes with global batch B end with the parameters (and log the losses) of one
  process that splits each global batch in two by stride, runs part r with generator
  ``rank_seed(seed, r)``, back-propagates loss_r / 2 for both parts and then steps (DDP averages the
  gradients of the two processes). Control: one process on the whole batch B ends elsewhere
  (negatives are sampled within each process's batch).
* Module parallel: 2 processes, each training its own modules and sending the detached z forward,
  log the same losses at every step and end with the same checkpoint as the single-process Trainer.
* Resume: a 2-process data-parallel run stopped mid epoch resumes exactly (every rank's generator is
  checkpointed); a module-parallel checkpoint (single-process format) resumes on one process.
* The torchrun entry point: ``torchrun --nproc_per_node=2 -m sim_models.cli train`` runs and only
  rank 0 writes.

Processes are spawned (torch.multiprocessing, start method "spawn"), joined with a timeout and
killed by pid if they overrun, so nothing hangs.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sim_models.rundir.checkpoint import load_checkpoint
from sim_models.config import Config, apply_overrides, get_config
from sim_models.data.datasets import TensorAudioDataset
from sim_models.training.strategies.module_parallel import split_units
from sim_models.rundir.checkpoint import CHECKPOINT_NAME
from sim_models.training.trainer import Trainer
from sim_models.model.greedy import build_model

TIMEOUT_S = 120
WORLD = 2


def _cfg(*extra) -> Config:
    return apply_overrides(get_config("tiny"), [
        "model.channels=[8,8,8,8,8]", "model.ar_hidden=6", "data.length=2560", "train.batch_size=4",
        "train.epochs=2", "train.lr_decay=0.9", "train.checkpoint_every=2", "train.log_every=1", *extra])


def _audio(n=13) -> torch.Tensor:
    """13 examples: DistributedSampler drops one, the single-process trainer drops it with the last partial batch."""
    return torch.randn(n, 2560, generator=torch.Generator().manual_seed(0))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, kind, cfg_dict, audio, run_dir, extra):
    """One process: join the gloo group on localhost, train, dump this rank's parameters."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from sim_models.training.strategies.env import init_distributed, shutdown
    info = init_distributed("gloo", timeout_s=60)
    cfg = Config.from_dict(cfg_dict)
    extra = dict(extra)
    resume = extra.pop("resume", False)
    nan_after = extra.pop("nan_on_rank1_after_reads", None)
    val = extra.pop("val", None)
    val = None if val is None else TensorAudioDataset(val)
    dataset = TensorAudioDataset(audio)
    if nan_after is not None and rank == 1:
        dataset = _NaNAfter(dataset, nan_after)
    if kind == "data":
        from sim_models.training.launch import DataParallelTrainer
        trainer = DataParallelTrainer(cfg, dataset, run_dir, progress=False, tensorboard=False, info=info,
                                      val_dataset=val)
    else:
        from sim_models.training.launch import ModuleParallelTrainer
        trainer = ModuleParallelTrainer(cfg, TensorAudioDataset(audio), run_dir, progress=False, tensorboard=False,
                                        info=info, val_dataset=val, **extra)
    if nan_after is not None:
        from sim_models.rundir.safety import TrainingFailed
        try:
            trainer.fit(resume=resume)
        except TrainingFailed as e:
            (Path(run_dir) / f"rank{rank}.failed.txt").write_text(str(e))
        shutdown()
        return
    trainer.fit(resume=resume)
    torch.save({k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}, Path(run_dir) / f"rank{rank}.params.pt")
    shutdown()


class _NaNAfter:
    """A dataset whose items turn NaN after ``n`` reads (on one rank only: the other rank's losses stay finite)."""

    def __init__(self, base, n):
        self.base, self.n, self.reads = base, n, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        x = self.base[i]
        return x * float("nan") if self.reads > self.n else x


def _spawn(kind, cfg, audio, run_dir, extra=None, world=WORLD):
    import torch.multiprocessing as mp
    ctx = mp.start_processes(_worker, args=(world, _free_port(), kind, cfg.to_dict(), audio, str(run_dir), extra or {}),
                             nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind} parallel workers did not finish in {TIMEOUT_S} s")
    finally:
        for p in ctx.processes:  # only the processes started here, by their handles
            if p.is_alive():
                p.kill()


def _rows(run_dir) -> list:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _assert_same_params(got: dict, want: dict, **tol):
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k].cpu(), want[k].cpu(), msg=lambda s: f"{k}: {s}", **tol)


# -- data parallel ------------------------------------------------------------------------------
def _dp_reference(cfg, audio, world):
    """One process emulating `world` DDP processes: per step, part r = batch[r::world] with generator r,
    backward of loss_r / world for each part (gradients accumulate: the DDP average), then one step.
    Follows the Trainer's plan (parallel: all units at once; sequential: unit after unit).
    Returns (model, [(step, module, mean loss over parts)])."""
    from sim_models.training.strategies.data_parallel import rank_seed
    tc = cfg.train
    model = build_model(cfg)
    units = model.training_units()
    opts = [torch.optim.Adam(model.unit_parameters(u), lr=tc.lr) for u in units]
    scheds = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=tc.lr_decay) for o in opts]
    gens = [torch.Generator().manual_seed(rank_seed(tc.seed, r)) for r in range(world)]
    if tc.mode == "parallel":
        plan = [(0, [m for u in units for m in u], list(range(len(units))))]
    else:
        plan = [(u, units[u], [u]) for u in range(len(units))]
    B, step, logged = tc.batch_size, 0, []
    for unit, active, opt_ids in plan:
        for epoch in range(tc.epochs):
            g = torch.Generator().manual_seed(tc.seed * 1_000_003 + unit * 10_007 + epoch)
            perm = torch.randperm(len(audio), generator=g)
            for j in range(len(audio) // B):
                batch = perm[j * B:(j + 1) * B]
                for i in opt_ids:
                    opts[i].zero_grad(set_to_none=True)
                parts = []
                for r in range(world):
                    results = model.losses_for(audio[batch[r::world]], active, gens[r])
                    (sum(x.loss for x in results) / world).backward()
                    parts.append(torch.stack([x.loss.detach() for x in results]))
                for i in opt_ids:
                    opts[i].step()
                step += 1
                mean = (sum(parts) / world).tolist()
                logged += [(step, x.index, loss) for x, loss in zip(results, mean)]
            for i in opt_ids:
                scheds[i].step()
    return model, logged


LOCAL = ["train.negatives=local"]  # negatives from each process's own examples (the split-batch reference)
END_TO_END = ["model.end_to_end=true", "model.modules=[[0,1,2,3,4]]", "model.maxpool=[0]", "model.probabilistic=false",
              "model.beta=0"]  # CPC: one training unit, one DDP over the whole model


@pytest.mark.parametrize("extra", [[], ["train.mode=sequential", "train.epochs=1"], END_TO_END],
                         ids=["parallel", "sequential", "end-to-end"])
def test_data_parallel_two_processes_equal_one_process_with_split_batches(tmp_path, extra):
    cfg, audio = _cfg(*LOCAL, *extra), _audio()
    _spawn("data", cfg, audio, tmp_path / "dp")
    ref_model, ref_logged = _dp_reference(cfg, audio, WORLD)

    ckpt = load_checkpoint(tmp_path / "dp" / CHECKPOINT_NAME)
    assert ckpt["position"]["step"] == ref_logged[-1][0] and len(ckpt["rank_generators"]) == WORLD
    want = ref_model.state_dict()
    _assert_same_params(ckpt["model"], want)
    for r in range(WORLD):  # every rank holds the same parameters
        _assert_same_params(torch.load(tmp_path / "dp" / f"rank{r}.params.pt"), want)
    rows = _rows(tmp_path / "dp")
    assert [(r["step"], r["module"]) for r in rows] == [(s, m) for s, m, _ in ref_logged]  # rank 0 alone logs
    torch.testing.assert_close(torch.tensor([r["loss"] for r in rows]), torch.tensor([x for _, _, x in ref_logged]))

    # Control: one process on the whole global batch (negatives from all 4 examples) ends elsewhere.
    Trainer(cfg, TensorAudioDataset(audio), tmp_path / "single", progress=False, tensorboard=False).fit()
    single = load_checkpoint(tmp_path / "single" / CHECKPOINT_NAME)["model"]
    gap = max((single[k] - want[k]).abs().max().item() for k in want)
    assert gap > 1e-4, f"one process on the whole batch ended within {gap:.2e} of the split-batch run"


# Global negatives: (extra overrides, processes, global batch). 13 examples: each epoch 3 batches of 4 for P = 2,
# 2 batches of 6 for P = 3 (DistributedSampler and the single-process trainer drop the same remainder).
GLOBAL_CASES = {
    "sim-2": ([], 2, 4),
    "sim-3": ([], 3, 6),
    "gim-2": (["model.probabilistic=false", "model.beta=0"], 2, 4),
    "crop-3": (["model.subsample_window=13"], 3, 6),
    "sequential-2": (["train.mode=sequential", "train.epochs=1"], 2, 4),
    "end-to-end-2": (END_TO_END, 2, 4),
}


@pytest.mark.parametrize("case", list(GLOBAL_CASES))
def test_global_negatives_equal_one_process_on_the_global_batch(tmp_path, case):
    """train.negatives=global: P processes end with the parameters (and log the losses) of the single-process
    Trainer on the same global batches: the same noise, crops and negatives, every anchor against all
    batch_size examples' targets (gathered with gradient)."""
    extra, world, batch = GLOBAL_CASES[case]
    cfg, audio = _cfg("train.negatives=global", f"train.batch_size={batch}", *extra), _audio()
    _spawn("data", cfg, audio, tmp_path / "dp", world=world)
    Trainer(cfg, TensorAudioDataset(audio), tmp_path / "single", progress=False, tensorboard=False).fit()
    want = load_checkpoint(tmp_path / "single" / CHECKPOINT_NAME)
    got = load_checkpoint(tmp_path / "dp" / CHECKPOINT_NAME)
    assert got["position"]["step"] == want["position"]["step"] > 0
    _assert_same_params(got["model"], want["model"])
    for r in range(world):
        _assert_same_params(torch.load(tmp_path / "dp" / f"rank{r}.params.pt"), want["model"])
    rows, ref = _rows(tmp_path / "dp"), _rows(tmp_path / "single")
    assert [(r["step"], r["module"]) for r in rows] == [(r["step"], r["module"]) for r in ref]
    for key in ("loss", "nce", "kl"):
        torch.testing.assert_close(torch.tensor([r[key] for r in rows]), torch.tensor([r[key] for r in ref]),
                                   msg=lambda m, key=key: f"{key}: {m}")


def test_global_negatives_resume_after_sigkill(tmp_path):
    """Both processes SIGKILLed after step 3 (a checkpoint at step 2), then resumed: the run ends with the
    parameters of the uninterrupted single-process Trainer."""
    import signal

    cfg, audio = _cfg("train.negatives=global"), _audio()
    marker = tmp_path / "paused"
    os.environ.update(SIM_TEST_PAUSE_AT="step:3", SIM_TEST_PAUSE_MARKER=str(marker), SIM_TEST_PAUSE_SECONDS="120")
    import torch.multiprocessing as mp
    try:
        ctx = mp.start_processes(_worker, args=(WORLD, _free_port(), "data", cfg.to_dict(), audio,
                                                str(tmp_path / "dp"), {}), nprocs=WORLD, join=False,
                                 start_method="spawn")
        deadline = time.monotonic() + TIMEOUT_S
        while not marker.exists():
            assert time.monotonic() < deadline, "the run never reached step 3"
            time.sleep(0.2)
        time.sleep(0.5)  # both ranks reach the pause point (rank 0's marker may come first)
        for p in ctx.processes:
            os.kill(p.pid, signal.SIGKILL)
        for p in ctx.processes:
            p.join(10)
    finally:
        for key in ("SIM_TEST_PAUSE_AT", "SIM_TEST_PAUSE_MARKER", "SIM_TEST_PAUSE_SECONDS"):
            os.environ.pop(key, None)
    assert load_checkpoint(tmp_path / "dp" / CHECKPOINT_NAME)["position"]["step"] == 2
    _spawn("data", cfg, audio, tmp_path / "dp", {"resume": True})
    Trainer(cfg, TensorAudioDataset(audio), tmp_path / "single", progress=False, tensorboard=False).fit()
    want = load_checkpoint(tmp_path / "single" / CHECKPOINT_NAME)
    got = load_checkpoint(tmp_path / "dp" / CHECKPOINT_NAME)
    assert got["position"]["step"] == want["position"]["step"] == 6
    _assert_same_params(got["model"], want["model"])


def test_data_parallel_resumes_exactly(tmp_path):
    """Stop 2 processes after 4 steps (mid epoch 2), resume with 2 processes: every rank's generator comes
    back from the checkpoint, so the run ends where the uninterrupted split-batch reference ends."""
    cfg, audio = _cfg(*LOCAL), _audio()
    _spawn("data", _cfg(*LOCAL, "train.max_steps=4"), audio, tmp_path / "dp")
    assert load_checkpoint(tmp_path / "dp" / CHECKPOINT_NAME)["position"]["step"] == 4
    _spawn("data", cfg, audio, tmp_path / "dp", {"resume": True})
    ref_model, ref_logged = _dp_reference(cfg, audio, WORLD)
    ckpt = load_checkpoint(tmp_path / "dp" / CHECKPOINT_NAME)
    assert ckpt["position"]["step"] == 6
    _assert_same_params(ckpt["model"], ref_model.state_dict())
    rows = _rows(tmp_path / "dp")
    torch.testing.assert_close(torch.tensor([r["loss"] for r in rows]), torch.tensor([x for _, _, x in ref_logged]))


# -- module parallel -----------------------------------------------------------------------------
def test_data_parallel_nan_on_one_rank_stops_every_rank_and_rank0_reports(tmp_path):
    # rank 1 reads 2 examples per step: its loss turns NaN at step 3, rank 0's never does; log_every=1 checks at once
    run = tmp_path / "run"
    _spawn("data", _cfg("train.checkpoint_every=0"), _audio(), run, {"nan_on_rank1_after_reads": 4})
    for r in range(WORLD):  # both ranks stopped (none left waiting in a collective) at the same step
        msg = (run / f"rank{r}.failed.txt").read_text()
        assert "after step 3 " in msg and "FloatingPointError: the loss became NaN or infinite at step 3" in msg, msg
    assert json.loads((run / "failure.json").read_text())["position"]["step"] == 3  # written by rank 0 only
    assert "details:" in (run / "rank0.failed.txt").read_text()
    assert "details:" not in (run / "rank1.failed.txt").read_text()
    assert not (run / CHECKPOINT_NAME).exists()  # the diverged state was never checkpointed


def test_split_units():
    assert split_units(3, 2) == [[0, 1], [2]]
    assert split_units(4, 3) == [[0, 1], [2], [3]]
    with pytest.raises(ValueError, match="only 2 training units"):
        split_units(2, 3)


@pytest.mark.parametrize("groups, extra", [([[0, 1], [2]], []), ([[0], [1, 2]], []),
                                           ([[0], [1, 2]], ["train.autocast=bfloat16"])],
                         ids=["units01-2", "units0-12", "units0-12-bf16-autocast"])
def test_module_parallel_matches_single_process_step_for_step(tmp_path, groups, extra):
    """bf16 autocast: rank 0 sends module 0's z in bf16, as module 1 reads it in one process."""
    cfg, audio = _cfg(*extra), _audio()
    _spawn("module", cfg, audio, tmp_path / "mp", {"groups": groups})
    Trainer(cfg, TensorAudioDataset(audio), tmp_path / "single", progress=False, tensorboard=False).fit()

    got, want = _rows(tmp_path / "mp"), _rows(tmp_path / "single")
    assert [(r["step"], r["module"]) for r in got] == [(r["step"], r["module"]) for r in want]
    assert got[-1]["step"] == 6
    for key in ("loss", "nce", "kl", "accuracy", "lr"):  # every module, every step
        torch.testing.assert_close(torch.tensor([r[key] for r in got]), torch.tensor([r[key] for r in want]),
                                   rtol=0, atol=0, msg=lambda s: f"{key}: {s}")
    a, b = load_checkpoint(tmp_path / "mp" / CHECKPOINT_NAME), load_checkpoint(tmp_path / "single" / CHECKPOINT_NAME)
    assert a["position"] == b["position"] and a["schedulers"] == b["schedulers"]
    _assert_same_params(a["model"], b["model"], rtol=0, atol=0)
    for oa, ob in zip(a["optimizers"], b["optimizers"]):
        for pid in ob["state"]:
            for name in ("exp_avg", "exp_avg_sq", "step"):
                torch.testing.assert_close(oa["state"][pid][name], ob["state"][pid][name], rtol=0, atol=0)
    assert torch.equal(a["generator"], b["generator"])
    # each rank trained only its own modules: rank 1 never touched module 0
    init = build_model(cfg).state_dict()
    rank1 = torch.load(tmp_path / "mp" / "rank1.params.pt")
    _assert_same_params({k: v for k, v in rank1.items() if k.startswith("stages.0.")},
                        {k: v for k, v in init.items() if k.startswith("stages.0.")}, rtol=0, atol=0)


def test_module_parallel_checkpoint_resumes_on_one_process(tmp_path):
    """The checkpoint has the single-process format: stop a 2-process run after 4 steps (mid epoch), finish it on one
    process with --resume, and land exactly where an uninterrupted single-process run lands."""
    cfg, audio = _cfg(), _audio()
    _spawn("module", _cfg("train.max_steps=4"), audio, tmp_path / "mp")
    assert load_checkpoint(tmp_path / "mp" / CHECKPOINT_NAME)["position"]["step"] == 4
    Trainer(cfg, TensorAudioDataset(audio), tmp_path / "mp", progress=False, tensorboard=False).fit(resume=True)
    Trainer(cfg, TensorAudioDataset(audio), tmp_path / "single", progress=False, tensorboard=False).fit()
    a, b = load_checkpoint(tmp_path / "mp" / CHECKPOINT_NAME), load_checkpoint(tmp_path / "single" / CHECKPOINT_NAME)
    assert a["position"] == b["position"]
    _assert_same_params(a["model"], b["model"], rtol=0, atol=0)
    assert torch.equal(a["generator"], b["generator"])


def _val_audio() -> torch.Tensor:
    return torch.randn(5, 2560, generator=torch.Generator().manual_seed(9))  # batches of 4 + 1


def _val_rows(run_dir) -> list:
    return [r for r in _rows(run_dir) if r.get("split") == "val"]


def test_validation_under_module_parallel_equals_one_process(tmp_path):
    """The validation pipeline passes z and the generator state along the ranks: the val rows equal one process's."""
    cfg, audio, val = _cfg(), _audio(), _val_audio()
    _spawn("module", cfg, audio, tmp_path / "mp", {"val": val})
    Trainer(cfg, TensorAudioDataset(audio), tmp_path / "single", progress=False, tensorboard=False,
            val_dataset=TensorAudioDataset(val)).fit()
    got, want = _val_rows(tmp_path / "mp"), _val_rows(tmp_path / "single")
    assert [(r["step"], r["module"]) for r in got] == [(3, 0), (3, 1), (3, 2), (6, 0), (6, 1), (6, 2)]
    assert [(r["step"], r["module"]) for r in got] == [(r["step"], r["module"]) for r in want]
    for key in ("loss", "nce", "kl", "accuracy"):
        torch.testing.assert_close(torch.tensor([r[key] for r in got]), torch.tensor([r[key] for r in want]),
                                   rtol=0, atol=0, msg=lambda s: f"{key}: {s}")


def test_validation_under_data_parallel_is_the_trained_models_val_loss(tmp_path):
    """Rank 0 validates the (synchronised) model; its last rows equal one process validating the final checkpoint."""
    cfg, audio, val = _cfg(), _audio(), _val_audio()
    _spawn("data", cfg, audio, tmp_path / "dp", {"val": val})
    got = _val_rows(tmp_path / "dp")
    assert [(r["step"], r["module"]) for r in got] == [(3, 0), (3, 1), (3, 2), (6, 0), (6, 1), (6, 2)]
    t = Trainer(cfg, TensorAudioDataset(audio), tmp_path / "check", progress=False, tensorboard=False,
                val_dataset=TensorAudioDataset(val))
    t.model.load_state_dict(load_checkpoint(tmp_path / "dp" / CHECKPOINT_NAME)["model"])
    t.pos["step"] = 6
    want = t._validate([0, 1, 2], 0, 1)
    for key in ("loss", "nce", "kl", "accuracy"):
        torch.testing.assert_close(torch.tensor([r[key] for r in got[3:]]), torch.tensor([r[key] for r in want]))


def _two_ranks():
    from sim_models.training.strategies.env import DistInfo
    return DistInfo(rank=0, world_size=2, local_rank=0, backend="gloo", device=torch.device("cpu"))


@pytest.mark.parametrize("extra, error, match", [
    (END_TO_END, ValueError, "end_to_end"),
    (["train.mode=sequential"], ValueError, "train.mode='parallel'"),
    (["train.autocast=float16"], ValueError, "train.autocast='float16'"),  # one GradScaler per rank
    ([], RuntimeError, "process group"),  # a valid config, but no group initialised in this process
], ids=["end-to-end", "sequential", "float16-autocast", "no-group"])
def test_module_parallel_rejects(extra, error, match):
    from sim_models.training.launch import ModuleParallelTrainer
    with pytest.raises(error, match=match):
        ModuleParallelTrainer(_cfg(*extra), TensorAudioDataset(_audio()), "unused", info=_two_ranks())


def test_data_parallel_rejects_a_batch_it_cannot_split():
    from sim_models.training.launch import DataParallelTrainer
    with pytest.raises(ValueError, match="train.batch_size=5 is the global batch"):
        DataParallelTrainer(_cfg("train.batch_size=5"), TensorAudioDataset(_audio()), "unused", info=_two_ranks())


# -- the torchrun entry point ----------------------------------------------------------------------
def test_torchrun_cli_data_parallel(tmp_path):
    import soundfile as sf
    data = tmp_path / "wavs"
    data.mkdir()
    for i, x in enumerate(_audio(8)):
        sf.write(data / f"u{i}.wav", (0.3 * x).clamp(-1, 1).numpy(), 16000)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[3]),
                                                                           os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={WORLD}",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "sim_models.cli", "train",
           "--config", "tiny", "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress", "--threads", "1",
           "model.channels=[8,8,8,8,8]", "model.ar_hidden=6", "data.length=2560", "train.batch_size=4",
           "train.max_steps=2", "train.log_every=1"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("training 'tiny'") == 1, p.stdout  # rank 0 alone prints
    ckpt = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert ckpt["position"]["step"] == 2 and len(ckpt["rank_generators"]) == WORLD
    assert [r["step"] for r in _rows(tmp_path / "run")] == [1, 1, 1, 2, 2, 2]
    # Global negatives (the default) under torchrun: the parameters of `sim train` in one process.
    single = [sys.executable, "-m", "sim_models.cli", *cmd[cmd.index("train"):]]
    single[single.index(str(tmp_path / "run"))] = str(tmp_path / "single")
    p = subprocess.run(single, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stdout + p.stderr
    _assert_same_params(ckpt["model"], load_checkpoint(tmp_path / "single" / CHECKPOINT_NAME)["model"])
