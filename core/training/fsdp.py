"""torch FSDP2: `fully_shard` each decoder layer, then the root (gloo on CPU, NCCL on GPU)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_state_dict, set_state_dict)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from core.training import dist
from core.training.backend import (TrainingBackend, check_weights, decoder_layers, dtype_of, make_optimizer,
                                   place)
from core.training.config import TrainConfig
from core.training.materialize import is_meta

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
SHARDED_DIR = "train_state"  # torch.distributed.checkpoint directory
SCHEDULE_FILE = "schedule.pt"


class FSDP2Backend(TrainingBackend):
    """Parameters, gradients and optimizer state sharded over ranks; bf16 compute with fp32
    reductions when `dtype=bfloat16`. Full state dicts are gathered to rank 0 (empty on others)."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, weights: str | Path | None = None):
        self.cfg = cfg
        self.world_size = dist.world_size()
        self.rank = dist.rank()
        self.mesh = init_device_mesh(dist.device().type, (self.world_size,))
        check_weights(model, weights)
        self.model = self._shard(model, weights)
        self.optimizer, self.scheduler = make_optimizer(self.model, cfg)

    def _shard(self, model: nn.Module, weights: str | Path | None) -> nn.Module:
        """fully_shard each decoder layer, then the root; a built model is sharded where it
        lives, a meta-device one is then allocated shard by shard (and loaded from `weights`)."""
        meta = is_meta(model)
        if not meta:
            model = model.to(dist.device())
        mp = MixedPrecisionPolicy(param_dtype=dtype_of(self.cfg.dtype), reduce_dtype=torch.float32)
        for layer in decoder_layers(model):
            fully_shard(layer, mesh=self.mesh, mp_policy=mp)
        # The root (embeddings, head) reshards after forward too: a frozen reference never runs
        # the backward that would otherwise free it, and a no-grad policy pass should not keep it.
        fully_shard(model, mesh=self.mesh, mp_policy=mp, reshard_after_forward=True)
        return place(model, dist.device(), weights) if meta else model

    def frozen(self, model: nn.Module, weights: str | Path | None = None) -> nn.Module:
        """Sharded on the policy's mesh: a reference costs 1/world of its weights per rank."""
        return self._shard(model, weights).eval().requires_grad_(False)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        return get_model_state_dict(self.model, options=_FULL)

    def state_dict(self) -> dict[str, Any]:
        model_sd, optim_sd = get_state_dict(self.model, self.optimizer, options=_FULL)
        return {"model": model_sd, "optimizer": optim_sd, "scheduler": self.scheduler.state_dict()}

    def save_state(self, directory: str | Path) -> None:
        """Resume state as sharded `torch.distributed.checkpoint` files: every rank writes its own
        shards of the weights and AdamW moments (nothing is gathered); rank 0 adds the schedule."""
        import torch.distributed.checkpoint as dcp

        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(Path(directory) / SHARDED_DIR))
        if self.rank == 0:
            torch.save(self.scheduler.state_dict(), Path(directory) / SCHEDULE_FILE)

    def load_state(self, directory: str | Path) -> None:
        """Each rank reads its own shards (the mesh may differ from the one that saved: DCP reshards)."""
        import torch.distributed.checkpoint as dcp

        path = Path(directory) / SHARDED_DIR
        if not path.is_dir():
            raise FileNotFoundError(f"{directory}: no sharded training state ({SHARDED_DIR}/)")
        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        state = {"model": model_sd, "optimizer": optim_sd}
        dcp.load(state, checkpoint_id=str(path))
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
        self.scheduler.load_state_dict(torch.load(Path(directory) / SCHEDULE_FILE, weights_only=False))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """`state` is the full (gathered) dict on every rank; each rank keeps its shard."""
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optimizer"], options=StateDictOptions(full_state_dict=True))
        self.scheduler.load_state_dict(state["scheduler"])
