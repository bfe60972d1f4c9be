"""Negatives across P gloo processes (sim_kernels/distributed.py) against one process on the global batch.

Each of P processes holds B utterances of a global batch of P*B, gathers every process's targets with
gradient, draws nothing itself (the global negative indices come from one seeded stream, the same on
every process) and computes smooth_infonce over its own anchors. With the parameter gradients averaged
over the processes (what DistributedDataParallel does), the loss and every gradient must equal the
one-process loss of the global batch: the loss as the mean of the P losses, context/mu/logvar gradients
per utterance, targets' gradients summed over processes by all_gather's backward, the weight's averaged.
"""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sim_kernels import smooth_infonce
from sim_kernels.distributed import gather_targets, to_gathered_rows

B, T, Cc, Cz, K, N, BETA = 2, 7, 3, 4, 2, 5, 0.5


def _global_inputs(P, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(P * B, T, Cc, generator=g, dtype=torch.float64)
    z = torch.randn(P * B, T, Cz, generator=g, dtype=torch.float64)
    w = 0.5 * torch.randn(K, Cz, Cc, generator=g, dtype=torch.float64)
    mu = torch.randn(P * B, T, Cz, generator=g, dtype=torch.float64)
    lv = 0.2 * torch.randn(P * B, T, Cz, generator=g, dtype=torch.float64)
    idx = torch.randint(0, P * B * T, (K, P * B, T, N), generator=g)
    return c, z, w, mu, lv, idx


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, P, port, backend, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=P)
    try:
        c, z, w, mu, lv, idx = _global_inputs(P)
        mine = slice(rank * B, (rank + 1) * B)
        leaves = [x[mine].clone().requires_grad_() for x in (c, z)] + [w.clone().requires_grad_()] + \
                 [x[mine].clone().requires_grad_() for x in (mu, lv)]
        z_all = gather_targets(leaves[1])
        neg = to_gathered_rows(idx[:, mine].contiguous(), B * T)
        loss = smooth_infonce(leaves[0], z_all, leaves[2], neg, leaves[3], leaves[4], beta=BETA, backend=backend)
        loss.backward()
        grad_w = leaves[2].grad.clone()
        dist.all_reduce(grad_w)  # DDP: the weight's gradient averaged over the processes
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        torch.save({"loss": mean_loss / P, "grad_w": grad_w / P,
                    "grads": [leaves[i].grad / P for i in (0, 1, 3, 4)]}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("P", [2, 3])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_p_processes_equal_one_process_on_the_global_batch(tmp_path, P, backend):
    mp.start_processes(_worker, args=(P, _free_port(), backend, str(tmp_path)), nprocs=P, start_method="spawn")
    c, z, w, mu, lv, idx = _global_inputs(P)
    leaves = [x.clone().requires_grad_() for x in (c, z, w, mu, lv)]
    loss = smooth_infonce(leaves[0], leaves[1], leaves[2], idx, leaves[3], leaves[4], beta=BETA, backend="reference")
    loss.backward()
    for rank in range(P):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        mine = slice(rank * B, (rank + 1) * B)
        torch.testing.assert_close(got["loss"], loss.detach())
        torch.testing.assert_close(got["grad_w"], leaves[2].grad)
        for name, g, ref in zip(("context", "targets", "mu", "logvar"), got["grads"],
                                (leaves[0].grad, leaves[1].grad, leaves[3].grad, leaves[4].grad)):
            torch.testing.assert_close(g, ref[mine], msg=lambda m, name=name: f"rank {rank} grad_{name}: {m}")


def _uneven_worker(rank, P, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=P)
    try:
        z = torch.zeros(B + rank, T, Cz)
        try:
            gather_targets(z)
            msg = "no error"
        except ValueError as e:
            msg = str(e)
        with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
            f.write(msg)
    finally:
        dist.destroy_process_group()


def test_uneven_batches_are_refused_on_every_process(tmp_path):
    mp.start_processes(_uneven_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    for rank in range(2):
        assert "same shape on every process" in (tmp_path / f"rank{rank}.txt").read_text()


def test_without_a_process_group_the_error_says_so():
    with pytest.raises(RuntimeError, match="init_process_group"):
        gather_targets(torch.zeros(B, T, Cz))
