"""What both distributed strategies share (a mixin): rank 0 writes every file, the rank's device, gathering on
rank 0, a barrier after a checkpoint, finiteness agreed over ranks."""
from __future__ import annotations

import torch
import torch.distributed as dist


__all__ = ["RankZeroStrategy"]

_NONE = 2 ** 62  # "no bad step" in the all-reduce below


class RankZeroStrategy:
    """Mixin for distributed strategies with ``self.info`` (a DistInfo): only rank 0 writes config, logs,
    checkpoints and failure.json; a checkpoint write ends with a barrier; the NaN/inf guard raises on
    every rank at the same step (the earliest bad step of any rank), so no rank is left waiting in a
    collective for a rank that stopped."""

    @property
    def writes_files(self) -> bool:
        return self.info.is_main

    def device_for(self, cfg):
        return self.info.device  # the rank's device (NCCL: cuda:LOCAL_RANK; gloo: cpu); train.device is not used

    def gather_to_main(self, obj) -> list | None:
        """Every rank's ``obj`` as a list on rank 0 (a collective: every rank calls it); None elsewhere."""
        gathered = [None] * self.info.world_size if self.info.is_main else None
        dist.gather_object(obj, gathered, dst=0)
        return gathered

    def barrier(self):
        if self.info.world_size > 1:
            dist.barrier()  # nobody reads or resumes from a checkpoint rank 0 is still writing

    def first_bad_step(self, watch):
        first = watch.first_bad_step()
        if self.info.world_size > 1:
            device = self.info.device if dist.get_backend() == "nccl" else torch.device("cpu")
            t = torch.tensor(_NONE if first is None else first, dtype=torch.int64, device=device)
            dist.all_reduce(t, op=dist.ReduceOp.MIN)
            first = None if int(t) == _NONE else int(t)
        return first
