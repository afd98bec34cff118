"""Weights over a torch.distributed group that the trainer and the engines' workers share.

The group is its own communicator (a TCPStore plus a gloo or NCCL process group built
directly), so it touches neither the trainer's FSDP group nor vLLM's own: rank 0 is the
policy's rank 0, ranks 1.. are engine workers. gloo carries CPU tensors, NCCL CUDA
tensors; the code is the same. A bucket travels as one flat byte buffer, so one
collective moves many tensors of mixed dtypes, and a receiver holds one bucket at a time.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from datetime import timedelta
from math import prod
from typing import Callable

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class TensorSpec:
    """One weight as the engines receive it (HF name)."""

    name: str
    dtype: str  # torch dtype name without the "torch." prefix
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return prod(self.shape) * torch.empty((), dtype=getattr(torch, self.dtype)).element_size()


def spec_of(name: str, tensor: torch.Tensor) -> TensorSpec:
    return TensorSpec(name, str(tensor.dtype).removeprefix("torch."), tuple(tensor.shape))


def open_group(host: str, port: int, rank: int, world_size: int, device: torch.device,
               timeout_s: float = 600.0) -> dist.ProcessGroup:
    """Join the weight group; returns when every rank has joined. Rank 0 hosts the store."""
    timeout = timedelta(seconds=timeout_s)
    store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=timeout)
    store = dist.PrefixStore("reforge-weights", store)
    if device.type == "cuda":
        return dist.ProcessGroupNCCL(store, rank, world_size)
    return dist.ProcessGroupGloo(store, rank, world_size, timeout)


def pack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """One flat uint8 buffer holding every tensor's bytes, in order."""
    return torch.cat([t.detach().contiguous().reshape(-1).view(torch.uint8) for t in tensors])


def unpack(buffer: torch.Tensor, specs: list[TensorSpec]) -> list[tuple[str, torch.Tensor]]:
    """Views into `buffer`, one per spec (no copies)."""
    out, offset = [], 0
    for s in specs:
        n = s.nbytes
        out.append((s.name, buffer[offset:offset + n].view(getattr(torch, s.dtype)).view(s.shape)))
        offset += n
    return out


def broadcast_bucket(group: dist.ProcessGroup, specs: list[TensorSpec], device: torch.device,
                     tensors: list[torch.Tensor] | None = None) -> list[tuple[str, torch.Tensor]]:
    """Rank 0 passes `tensors` (in `specs` order) and sends; every other rank receives them."""
    if tensors is not None:
        buffer = pack([t.to(device) for t in tensors])
    else:
        buffer = torch.empty(sum(s.nbytes for s in specs), dtype=torch.uint8, device=device)
    opts = dist.BroadcastOptions()
    opts.rootRank = 0
    group.broadcast([buffer], opts).wait()
    return unpack(buffer, specs)


def receive_buckets(group: dist.ProcessGroup, buckets: list[list[TensorSpec]], device: torch.device,
                    load: Callable[[list[tuple[str, torch.Tensor]]], None]) -> int:
    """The receiving side of a sync: each broadcast bucket is handed to `load`, then freed
    before the next arrives (one bucket in memory at a time); returns the bytes received."""
    received = 0
    for specs in buckets:
        pairs = broadcast_bucket(group, specs, device)
        received += sum(t.numel() * t.element_size() for _, t in pairs)
        load(pairs)
        del pairs
        trim_heap()
    return received


def trim_heap() -> None:
    """Return freed memory to the OS after a bucket (glibc). Without it each bucket's buffers
    leave fragments the next bucket cannot reuse, and a sync of a 565 MiB model grew the
    engine by ~300 MiB instead of ~3 buckets (benchmarks/bench_weight_sync.py)."""
    libc = ctypes.util.find_library("c")
    if libc:
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)
        if trim is not None:
            trim(0)


def close_group(group: dist.ProcessGroup | None) -> None:
    if group is not None and hasattr(group, "shutdown"):
        group.shutdown()
