"""The greedy trainer: parallel or sequential module training, logs, exact resume.

Modes (``train.mode``):
* "parallel":   every step runs all modules; each training unit (a module and its loss, or the whole
                model end to end) has its own Adam optimiser and ExponentialLR schedule.
* "sequential": unit u trains for ``train.epochs`` epochs while units before it run frozen under
                no_grad (no activations kept: GIM's memory saving); then unit u+1, and so on.

Determinism and resume: the weights are initialised from ``train.seed``; the order of examples in
epoch e of unit u is ``randperm`` from a generator seeded with (seed, u, e); every other draw (the
reparameterisation noise, the negatives, GIM's crop) comes from one ``torch.Generator`` whose state
is checkpointed. A checkpoint stores model, optimisers, schedules, that generator's state and the
position (unit, epoch, batch, step), so ``resume`` continues exactly where the run stopped.

Validation (``val_dataset``, e.g. the test split; thesis Fig. 4.2): at every epoch end, with
``train.validate``, every module being trained (all of them in "parallel" mode, the current unit in
"sequential" mode) computes its loss on the whole validation set: no gradient, the model in training
mode (the reparameterisation samples and the negatives drawn as in training, so the validation loss is
the training loss on other data, as in the authors' validation/val_by_InfoNCELoss.py), its random draws
from a generator seeded with the same fixed seed (train.seed + VAL_SEED_OFFSET) at every evaluation (so
epoch-to-epoch changes are the model's, and the training generator is untouched: resume stays exact).
Batches of train.batch_size in the set's order, the last one partial; the logged values are means over
examples. Rows go to the same logs with ``split="val"`` (sim_models/rundir/logs.py). The step of a validation row is the
step at the epoch's end.

Mixed precision (``train.autocast``, sim_models/training/mixed_precision.py): None, "bfloat16" or "float16" (CUDA
only, with a GradScaler whose state the checkpoint keeps). The forward and losses of every step and of
validation run under ``torch.autocast`` on the model's device type; the backward and the optimiser steps
run outside it, on fp32 parameters.

Crash safety (sim_models/rundir/safety.py, docs/reliability.md): before the first step the run folder gets a write
probe and a free-space check; checkpoints are atomic and the logs are flushed before each one; a NaN or
infinite loss stops the run before it can be checkpointed; a run that fails raises ``TrainingFailed``
saying where it stopped and which checkpoint to resume from (also in RUN_DIR/failure.json).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from sim_models.config import Config, save_config
from sim_models.data.labelled import training_view
from sim_models.model.greedy import build_model, count_frames
from sim_models.rundir.checkpoint import (CHECKPOINT_NAME, load_checkpoint, remove_stale_temp_files, save_checkpoint,
                                          to_cpu)
from sim_models.rundir.logs import NullLogger, RunLogger
from sim_models.rundir.snapshots import save_snapshot
from sim_models.rundir.safety import (FiniteLossWatch, LOG_HEADROOM_BYTES, TrainingFailed, clear_failure,
                                      estimate_checkpoint_bytes, prepare_run_dir, record_failure, trim_logs)
from sim_models.training.mixed_precision import MixedPrecision
from sim_models.training.strategies.single import SingleProcessStrategy
from sim_models.util.fault_injection import pause_point
from sim_models.util.progress import Progress

__all__ = ["Trainer", "VAL_SEED_OFFSET"]

VAL_SEED_OFFSET = 7_777_777  # validation draws: generator seeded with train.seed + this at every evaluation


class Trainer:
    """Trainer(cfg, dataset, run_dir, val_dataset=None).fit(resume=False) -> summary dict.

    dataset: any object with __len__ and __getitem__(i) -> (cfg.data.length,) float tensor; for
    model.objective="supervised" a SyllableDataset (its syllables become the labelled examples, sim_models/data/labelled.py).
    val_dataset: the same kind of object (e.g. the test split), evaluated at every epoch end; None: no validation.
    Device (single process): ``cfg.train.device`` ("auto": cuda when available); the model, the batches and
    the generators of the noise, negatives and crops live there (the order of examples is drawn on the CPU,
    so it is the same on any device); checkpoints are device-independent.
    run_dir: receives config.yaml, checkpoint.pt, metrics.csv / metrics.jsonl (/ tensorboard/).
    progress: per epoch, a bar on a terminal, else one line with the last logged losses (sim_models/util/progress.py); False: none.
    """

    def __init__(self, cfg: Config, dataset, run_dir, progress: bool = True, tensorboard: bool = True,
                 val_dataset=None, strategy=None):
        self.strategy = SingleProcessStrategy() if strategy is None else strategy
        self.cfg, self.dir = cfg, Path(run_dir)
        self.dataset = training_view(dataset, cfg)
        self.val_dataset = training_view(val_dataset, cfg) if cfg.train.validate else None
        self.progress, self.tensorboard = progress, tensorboard
        if len(self.dataset) == 0:
            raise ValueError("dataset is empty")
        if self.val_dataset is not None and len(self.val_dataset) == 0:
            raise ValueError("val_dataset is empty")
        supervised = cfg.model.objective == "supervised"
        length = cfg.data.segment_length if supervised else cfg.data.length
        frames = count_frames(cfg.model, length)
        if min(frames) < 1:
            raise ValueError(f"an input of {length} samples is too short for the encoder: frames per stage {frames}")
        if not supervised and min(frames) <= cfg.model.prediction_steps:
            raise ValueError(f"data.length={cfg.data.length} gives {frames} frames per module, but every module needs "
                             f"more than K=model.prediction_steps={cfg.model.prediction_steps} frames")
        self.model = build_model(cfg)  # on the CPU from the seed: the same weights anywhere; strategy.setup moves it
        self.units = self.model.training_units()
        self.optimizers = [torch.optim.Adam(self.model.unit_parameters(u), lr=cfg.train.lr) for u in self.units]
        self.schedulers = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=cfg.train.lr_decay) for o in self.optimizers]
        self.pos = {"unit": 0, "epoch": 0, "batch": 0, "step": 0, "done": False}
        self.last_checkpoint = None  # (path, step) of the last checkpoint this run wrote or resumed from
        self._finite = FiniteLossWatch()
        # the strategy owns the device: it places the model and returns the device and the generator of the
        # noise, negatives and crops seeded there
        self.device, self.generator = self.strategy.setup(self.model, self.units, cfg)
        # train.autocast on that device (refuses float16 off CUDA); sim_models/training/mixed_precision.py
        self.precision = MixedPrecision(cfg.train.autocast, self.device)

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The checkpoint in the single-process format (the strategy's: a collective when distributed; None on
        ranks that do not write)."""
        return self.strategy.state_dict(self)

    def process_state_dict(self) -> dict:
        """This process's whole state: device-independent (every tensor on the CPU; load_checkpoint maps to the CPU and
        load_state_dict moves the states to the model's device)."""
        state = {"model": self.model.state_dict(), "optimizers": [o.state_dict() for o in self.optimizers],
                 "schedulers": [s.state_dict() for s in self.schedulers], "generator": self.generator.get_state(),
                 "position": dict(self.pos), "config": self.cfg.to_dict()}
        if self.precision.scaler is not None:  # float16 autocast only: the loss scale, for an exact resume
            state["grad_scaler"] = self.precision.state_dict()
        return state if self.device.type == "cpu" else to_cpu(state)

    def load_state_dict(self, state: dict):
        state = self.strategy.loaded_state(self, state)
        self.model.load_state_dict(state["model"])
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state["schedulers"]):
            sch.load_state_dict(s)
        self.generator.set_state(state["generator"])
        self.precision.load_state_dict(state.get("grad_scaler"))  # absent: a fresh scale (or no scaler)
        self.pos = dict(state["position"])

    def save(self):
        self._check_finite()  # a diverged state never replaces the last good checkpoint
        state, path = self.state_dict(), self.dir / CHECKPOINT_NAME  # state_dict: a collective when distributed
        if self._writes_files():
            save_checkpoint(state, path)
        self.last_checkpoint = (path, self.pos["step"])
        self._sync()

    # -- data --------------------------------------------------------------------------------
    def _batches(self, unit: int, epoch: int) -> list:
        return self.strategy.batches(self, unit, epoch)

    def _collate(self, idx, dataset=None):
        """The batch of examples ``idx`` of ``dataset`` (default: the training set), as the strategy collates it."""
        return self.strategy.collate(self, idx, self.dataset if dataset is None else dataset)

    # -- training ----------------------------------------------------------------------------
    def _stage_plan(self) -> list:
        """[(unit index, active stage list, optimiser indices)] per training phase."""
        if self.cfg.train.mode == "parallel":
            return [(0, [m for u in self.units for m in u], list(range(len(self.units))))]
        return [(u, self.units[u], [u]) for u in range(len(self.units))]

    def fit(self, resume: bool = False, epochs: int | None = None) -> dict:
        """Train (or continue, with ``resume``) until ``epochs`` (default cfg.train.epochs) per phase."""
        writer, ckpt = self._writes_files(), self.dir / CHECKPOINT_NAME
        if writer:
            # before any step: the folder exists, takes a real write and has room for a checkpoint (RunDirError)
            prepare_run_dir(self.dir, estimate_checkpoint_bytes(self.model) + LOG_HEADROOM_BYTES)
            remove_stale_temp_files(ckpt)  # left by a process killed while writing a checkpoint
        if resume:
            if not ckpt.exists():
                raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
            self.load_state_dict(load_checkpoint(ckpt))
            self.last_checkpoint = (ckpt, self.pos["step"])
            if writer:
                trim_logs(self.dir, self.pos["step"])  # rows of steps after the checkpoint are logged again below
        self._write_config()
        epochs = self.cfg.train.epochs if epochs is None else epochs
        log = self._open_log()
        t_start, steps_at_start = time.time(), self.pos["step"]
        self.model.train()
        try:
            done_already = self.cfg.train.max_steps is not None and self.pos["step"] >= self.cfg.train.max_steps
            stopped = True if done_already else self._run(epochs, log)
            self.pos["done"] = not stopped
            log.flush()
            self.save()
        except Exception as e:
            raise TrainingFailed(record_failure(self.dir, e, self.pos, self.last_checkpoint, write=writer)) from e
        except KeyboardInterrupt as e:
            print(record_failure(self.dir, e, self.pos, self.last_checkpoint, write=writer), file=sys.stderr)
            raise
        finally:
            log.close()
        if writer:
            clear_failure(self.dir)
        return {"steps": self.pos["step"], "stopped_early": stopped, "seconds": time.time() - t_start,
                "steps_this_run": self.pos["step"] - steps_at_start}

    def _run(self, epochs: int, log: RunLogger) -> bool:
        tc = self.cfg.train
        if self.pos["step"] == 0:
            self._snapshot(0, 0)  # the initialisation
        for unit, active, opt_ids in self._stage_plan():
            if unit < self.pos["unit"]:
                continue
            while self.pos["unit"] == unit and self.pos["epoch"] < epochs:
                epoch = self.pos["epoch"]
                batches = self._batches(unit, epoch)
                bar = Progress(len(batches), f"unit {unit} epoch {epoch + 1}/{epochs}" if tc.mode == "sequential"
                               else f"epoch {epoch + 1}/{epochs}", initial=self.pos["batch"], enabled=self.progress)
                for b in range(self.pos["batch"], len(batches)):
                    results = self._step(self._collate(batches[b]), active, opt_ids)
                    self.pos["batch"], self.pos["step"] = b + 1, self.pos["step"] + 1
                    step = self.pos["step"]
                    self._finite.update([r.loss for r in results], step)
                    pause_point("step", step)  # test hook (sim_models/util/fault_injection.py)
                    if step % tc.log_every == 0 or b == len(batches) - 1:
                        self._check_finite()
                        rows = self._rows(results, unit, epoch)
                        for r in rows:
                            log.log(r)
                        bar.set_postfix_str(" ".join(f"m{r['module']} L={r['loss']:.3f} nce={r['nce']:.3f} "
                                                     f"kl={r['kl']:.3f} acc={r['accuracy']:.2f}" for r in rows))
                    bar.update(1)
                    stop = tc.max_steps is not None and step >= tc.max_steps
                    if stop and b < len(batches) - 1:
                        bar.close()
                        return True
                    if tc.checkpoint_every and step % tc.checkpoint_every == 0 and b < len(batches) - 1:
                        # (at an epoch's last batch the epoch-end checkpoint follows, after the validation rows)
                        log.flush()  # the logs on disk always reach the checkpoint's step
                        self.save()
                bar.close()
                for i in opt_ids:
                    self.schedulers[i].step()
                self.pos["epoch"], self.pos["batch"] = epoch + 1, 0
                if self.pos["epoch"] >= epochs and tc.mode == "sequential":
                    self.pos["unit"], self.pos["epoch"] = unit + 1, 0  # next unit (parallel keeps counting epochs)
                for r in self._validate(active, unit, epoch):
                    log.log(r)
                log.flush()
                if (epoch + 1) % max(tc.snapshot_every, 1) == 0 or epoch + 1 == epochs:
                    self._snapshot(unit, epoch + 1)
                if stop:
                    return True
                self.save()
            if self.pos["unit"] == unit and tc.mode == "sequential":  # resumed with this unit's epochs done
                self.pos["unit"], self.pos["epoch"], self.pos["batch"] = unit + 1, 0, 0
        return False

    def _step(self, batch, active: list, opt_ids: list) -> list:
        return self.strategy.step(self, batch, active, opt_ids)

    def _rows(self, results, unit, epoch) -> list:
        """The log rows of a step (the strategy's reduction and gathering: a collective when distributed)."""
        rows = []
        for r in self.strategy.reduce_results(results):
            lr = self.optimizers[self._unit_of(r.index)].param_groups[0]["lr"]
            rows.append(self._row(unit, epoch, r.index, float(r.loss.detach()), float(r.metrics["nce"].mean()),
                                  float(r.metrics["kl"]), float(r.metrics["accuracy"].mean()), lr, "train"))
        return self.strategy.gather_rows(rows)

    def _row(self, unit, epoch, module, loss, nce, kl, accuracy, lr, split) -> dict:
        """One log row (sim_models/rundir/logs.py's columns) at the current step."""
        return {"step": self.pos["step"], "unit": unit, "epoch": epoch, "module": module, "loss": loss, "nce": nce,
                "kl": kl, "accuracy": accuracy, "lr": lr, "split": split}

    # -- validation -----------------------------------------------------------------------------
    def _val_generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.cfg.train.seed + VAL_SEED_OFFSET)

    def _val_batches(self) -> list:
        n, bs = len(self.val_dataset), self.cfg.train.batch_size
        return [torch.arange(i, min(i + bs, n)) for i in range(0, n, bs)]

    def _val_losses(self, batch, active, generator) -> list:
        """StageResults of one validation batch (no gradient), as the strategy computes them."""
        return self.strategy.val_losses(self, batch, active, generator)

    @torch.no_grad()
    def _validate(self, active, unit: int, epoch: int) -> list:
        """Validation rows (split "val") of the stages in ``active`` at the end of ``epoch``; [] without a val set
        (and on processes the strategy does not log from; a collective when the strategy gathers rows)."""
        if self.val_dataset is None:
            return []
        return self.strategy.gather_rows(self._validation_rows(active, unit, epoch) if self.strategy.validates() else [])

    def _validation_rows(self, active, unit: int, epoch: int) -> list:
        """This process's validation rows: per stage, the means over examples of its batches' ``stats()``."""
        g, sums, total = self._val_generator(), {}, 0
        for idx in self._val_batches():
            results = self._val_losses(self._collate(idx, self.val_dataset), active, g)
            w = len(idx)
            total += w
            for r in results:
                vals = r.stats() * w
                sums[r.index] = sums[r.index] + vals if r.index in sums else vals
        return [self._row(unit, epoch, m, *(sums[m] / total).tolist(), None, "val") for m in sorted(sums)]

    def _unit_of(self, stage: int) -> int:
        return next(i for i, u in enumerate(self.units) if stage in u)

    # -- processes (the strategy's: only rank 0 writes when distributed) ------------------------
    def _writes_files(self) -> bool:
        """Whether this process writes config, logs, checkpoints and failure.json (rank 0 only when distributed)."""
        return self.strategy.writes_files

    def _sync(self):
        self.strategy.barrier()

    def _check_finite(self):
        """Raise FloatingPointError if a loss so far was NaN or inf (on every rank at once when distributed)."""
        self._finite.check(self.strategy.first_bad_step(self._finite))

    def _snapshot(self, unit: int, epochs_done: int):
        """RUN_DIR/snapshots/: the weights after ``epochs_done`` epochs (of ``unit`` in sequential mode), when
        ``train.snapshot_every`` asks for snapshots (sim_models/rundir/snapshots.py). The weights come from the
        strategy's checkpoint state (a collective when distributed: every process calls this)."""
        if not self.cfg.train.snapshot_every:
            return
        state = self.state_dict()
        if self._writes_files():
            save_snapshot(state["model"], self.dir, epochs_done, self.pos["step"],
                          unit if self.cfg.train.mode == "sequential" else None)

    def _write_config(self):
        if self._writes_files():
            save_config(self.cfg, self.dir / "config.yaml")

    def _open_log(self):
        if not self._writes_files():
            return NullLogger()
        return RunLogger(self.dir, tensorboard=self.tensorboard)
