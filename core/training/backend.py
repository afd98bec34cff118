"""The training backend: one interface over a plain module, torch FSDP2 and DeepSpeed ZeRO.

Callers (the SFT trainer, GRPO policy workers, NAS distillation) do

    backend = build_backend(cfg, model)           # or meta_model(dir) + weights=dir: sharded load
    out = backend.model(input_ids=...)            # forward, on every rank
    backend.backward(local_token_loss_sum / global_token_count)
    ...                                           # grad_accum micro-batches
    stats = backend.optimizer_step()              # clip, step, schedule, zero_grad

Token-level averaging over the global batch: the caller divides its local sum of token
losses by the loss-token count summed over every rank and micro-batch
(`backend.global_count`). Data-parallel wrappers average gradients over ranks, so
`backward` multiplies by the world size to turn that average back into the sum the
global token mean needs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.training import dist
from core.training.config import TrainConfig
from core.training.materialize import is_meta, load_weights, materialize
from core.training.schedule import lr_lambda

BACKENDS = ("none", "fsdp2", "deepspeed")
STATE_FILE = "train_state.pt"


def dtype_of(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only; norms, biases and scaling vectors stay undecayed."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas),
                            eps=cfg.eps)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks (FSDP units), found by class name so HF, peft-wrapped
    and DeciLM models all work."""
    return [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]


def check_weights(model: nn.Module, weights: str | Path | None) -> None:
    """A trained model is either built, or on the meta device with `weights` to load."""
    if is_meta(model) and weights is None:
        raise ValueError("a meta-device model needs `weights` (an HF directory) to load")
    if not is_meta(model) and weights is not None:
        raise ValueError("`weights` is for meta-device models; this one is already built")


def place(model: nn.Module, device: torch.device, weights: str | Path | None) -> nn.Module:
    """Move a built model to `device`; or allocate a meta-device one there and load `weights`
    (without `weights` its storage is left uninitialised, for the caller to fill)."""
    if not is_meta(model):
        return model.to(device)
    materialize(model, device)
    if weights is not None:
        load_weights(model, weights)
    return model


class TrainingBackend:
    """A single process with a plain module (backend `none`, or any backend at world size 1)."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, weights: str | Path | None = None):
        self.cfg = cfg
        self.world_size = dist.world_size()
        self.rank = dist.rank()
        check_weights(model, weights)
        self.model = self._autocast(place(model, dist.device(), weights))
        self.optimizer, self.scheduler = make_optimizer(self.model, cfg)

    def _autocast(self, model: nn.Module) -> nn.Module:
        if self.cfg.dtype == "bfloat16":
            # fp32 master weights, bf16 compute
            model.forward = torch.autocast(dist.device().type, dtype=torch.bfloat16)(model.forward)
        return model

    def frozen(self, model: nn.Module, weights: str | Path | None = None) -> nn.Module:
        """Place a module that is never trained (a reference model) the way the trained one is
        placed: same device and compute dtype here, sharded on the same mesh under FSDP2. A
        meta-device module is loaded from `weights`, or left uninitialised for the caller."""
        return self._autocast(place(model, dist.device(), weights)).eval().requires_grad_(False)

    def global_count(self, local_count: float) -> float:
        """A count (loss tokens) summed over every rank."""
        return dist.all_reduce_sum(local_count)

    def backward(self, loss: torch.Tensor) -> None:
        (loss * self.world_size).backward()

    def _clip(self) -> torch.Tensor:
        params = [p for p in self.model.parameters() if p.requires_grad]
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def optimizer_step(self) -> dict[str, float]:
        norm = self._clip()
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"grad_norm": float(norm), "lr": float(lr)}

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Every weight, gathered, on the CPU, under the module's own (HF) names."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        """Everything exact resume needs: weights, optimizer moments, schedule position."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def save_state(self, directory: str | Path) -> None:
        """Write the resume state (rank 0 writes one file; collective on every rank)."""
        state = self.state_dict()
        if self.rank == 0:
            Path(directory).mkdir(parents=True, exist_ok=True)
            torch.save(state, Path(directory) / STATE_FILE)

    def load_state(self, directory: str | Path) -> None:
        state = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=False)
        self.load_state_dict(state)


def build_backend(cfg: TrainConfig, model: nn.Module, weights: str | Path | None = None) -> TrainingBackend:
    """Wrap `model` for the configured backend; joins the process group from the environment.

    `model` is either built (weights in it) or on the meta device (`materialize.meta_model`),
    in which case each rank allocates its shard and reads its part of the HF directory `weights`.
    """
    if cfg.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {cfg.backend!r}")
    if cfg.backend == "deepspeed":
        from core.training.deepspeed_backend import DeepSpeedBackend

        if weights is not None or is_meta(model):
            raise ValueError("the deepspeed backend takes a built model (no meta-device init)")
        return DeepSpeedBackend(cfg, model)
    distributed = dist.init_from_env()
    if cfg.backend == "fsdp2" and distributed:
        from core.training.fsdp import FSDP2Backend

        return FSDP2Backend(cfg, model, weights)
    return TrainingBackend(cfg, model, weights)
