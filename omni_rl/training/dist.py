"""torch.distributed helpers for the data-parallel trainer (gloo on CPU, nccl on GPU).

Data parallelism here is "replicated weights + one SUM all-reduce of the gradients per optimizer step" (see
docs/training.md for why not FSDP2 by default). Every rank all-reduces EVERY trainable parameter's gradient, a zero
tensor where it had none (a rank whose shard had no image never ran the vision encoder), so the collectives always
match across ranks.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def init_process_group(*, rank: int, world_size: int, master_addr: str, master_port: int, backend: str) -> None:
    """Join the trainer's process group (sets MASTER_ADDR / MASTER_PORT for env:// rendezvous).

    A process holds one default group. An in-process vLLM engine creates its own (world size 1), so a sharded or
    multi-rank trainer cannot share a process with one: Ray gives each trainer rank its own process."""
    if dist.is_initialized():
        raise RuntimeError(
            f"this process already has a torch.distributed default group (backend {dist.get_backend()}, world size "
            f"{dist.get_world_size()}; an in-process vLLM engine creates one). Run each trainer rank in its own process "
            "(TrainerGroup does, one Ray actor per rank) or call torch.distributed.destroy_process_group() first.")
    os.environ["MASTER_ADDR"] = master_addr
    os.environ["MASTER_PORT"] = str(master_port)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size, init_method="env://")


def default_backend(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def _buckets(tensors: Sequence[Tensor], max_bytes: int) -> Iterator[list[Tensor]]:
    bucket: list[Tensor] = []
    size = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        if bucket and (size + nbytes > max_bytes or t.dtype != bucket[0].dtype):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += nbytes
    if bucket:
        yield bucket


def all_reduce_grads(params: Sequence[torch.nn.Parameter], *, bucket_bytes: int = 64 << 20) -> None:
    """SUM-all-reduce the gradients of `params` in place (flattened buckets); missing grads become zeros first."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    for bucket in _buckets(grads, bucket_bytes):
        flat = torch._utils._flatten_dense_tensors(bucket)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        for g, reduced in zip(bucket, torch._utils._unflatten_dense_tensors(flat, bucket)):
            g.copy_(reduced)


def all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """SUM over ranks of a few floats (float64)."""
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_reduce_max(values: Sequence[float], device: torch.device) -> list[float]:
    """MAX over ranks of a few floats (float64)."""
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()
