"""DeepSpeed ZeRO 1-3 behind the TrainingBackend interface.

A torch AdamW is handed to DeepSpeed: its own CPU Adam JIT-compiles C++ for about a
minute on first use. `managed_gradient_accumulation=False` lets `backward` run any number
of times before `step` reduces and updates, which is the interface's contract.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.training import dist
from core.training.backend import TrainingBackend, make_optimizer
from core.training.config import TrainConfig

TAG = "state"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _init_distributed() -> None:
    """DeepSpeed always needs a process group; a lone process gets a group of one."""
    import deepspeed

    if dist.is_distributed():
        return
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"),
                       ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")


def ds_config(cfg: TrainConfig) -> dict[str, Any]:
    if cfg.zero_stage not in (1, 2, 3):
        raise ValueError(f"zero_stage must be 1, 2 or 3, got {cfg.zero_stage}")
    return {
        "train_micro_batch_size_per_gpu": 1,  # batching is the caller's; DeepSpeed only logs it
        "gradient_accumulation_steps": 1,
        "managed_gradient_accumulation": False,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage, "overlap_comm": False},
        "bf16": {"enabled": cfg.dtype == "bfloat16"},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
    }


class DeepSpeedBackend(TrainingBackend):
    def __init__(self, cfg: TrainConfig, model: nn.Module):
        import deepspeed

        _init_distributed()
        self.cfg = cfg
        self.world_size = dist.world_size()
        self.rank = dist.rank()
        optimizer, scheduler = make_optimizer(model, cfg)
        engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config(cfg))
        self.model = engine
        self.engine = engine

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss * self.world_size)

    def optimizer_step(self) -> dict[str, float]:
        lr = self.scheduler.get_last_lr()[0]
        self.engine.step()
        self.engine.zero_grad()
        norm = self.engine.get_global_grad_norm()
        return {"grad_norm": float(norm) if norm is not None else float("nan"), "lr": float(lr)}

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Gathered to rank 0 under ZeRO-3 (empty on other ranks); replicated below stage 3."""
        if self.cfg.zero_stage == 3:
            sd = self.engine._zero3_consolidated_16bit_state_dict()
            return {k: v.detach().cpu() for k, v in (sd or {}).items()}
        return {k: v.detach().to("cpu", copy=True) for k, v in self.engine.module.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError("DeepSpeed keeps per-rank optimizer partitions: use save_state/load_state")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError("DeepSpeed keeps per-rank optimizer partitions: use save_state/load_state")

    def save_state(self, directory: str | Path) -> None:
        self.engine.save_checkpoint(str(directory), tag=TAG)

    def load_state(self, directory: str | Path) -> None:
        self.engine.load_checkpoint(str(directory), tag=TAG)
