"""torch FSDP2: `fully_shard` each decoder layer, then the root (gloo on CPU, NCCL on GPU)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_state_dict, set_state_dict)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from core.training import dist
from core.training.backend import TrainingBackend, decoder_layers, dtype_of, make_optimizer
from core.training.config import TrainConfig

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


class FSDP2Backend(TrainingBackend):
    """Parameters, gradients and optimizer state sharded over ranks; bf16 compute with fp32
    reductions when `dtype=bfloat16`. Full state dicts are gathered to rank 0 (empty on others)."""

    def __init__(self, cfg: TrainConfig, model: nn.Module):
        self.cfg = cfg
        self.world_size = dist.world_size()
        self.rank = dist.rank()
        dev = dist.device()
        mesh = init_device_mesh(dev.type, (self.world_size,))
        mp = MixedPrecisionPolicy(param_dtype=dtype_of(cfg.dtype), reduce_dtype=torch.float32)
        model = model.to(dev)
        for layer in decoder_layers(model):
            fully_shard(layer, mesh=mesh, mp_policy=mp)
        fully_shard(model, mesh=mesh, mp_policy=mp)
        self.model = model
        self.optimizer, self.scheduler = make_optimizer(model, cfg)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        return get_model_state_dict(self.model, options=_FULL)

    def state_dict(self) -> dict[str, Any]:
        model_sd, optim_sd = get_state_dict(self.model, self.optimizer, options=_FULL)
        return {"model": model_sd, "optimizer": optim_sd, "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """`state` is the full (gathered) dict on every rank; each rank keeps its shard."""
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optimizer"], options=StateDictOptions(full_state_dict=True))
        self.scheduler.load_state_dict(state["scheduler"])
