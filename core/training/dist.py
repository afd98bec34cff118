"""Process-group helpers: the same code runs single-process (no group) and under torchrun."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def init_from_env() -> bool:
    """Join the process group torchrun (or a Ray worker) described in the environment.

    gloo on CPU, NCCL on GPU. Returns False when the environment names no group
    (WORLD_SIZE unset or 1): the caller then runs as a plain single process.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(device())
    dist.init_process_group(backend)
    return True


def all_reduce_sum(value: float | int) -> float:
    """Sum a Python number over ranks (e.g. the global count of loss tokens)."""
    if not is_distributed():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64,
                     device=device() if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return float(t.item())
