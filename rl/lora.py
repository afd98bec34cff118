"""LoRA for the RL policy: train low-rank adapters on a frozen base.

Why: the reference model comes for free (the same module with its adapters switched off,
no second copy of the weights), optimizer state shrinks to the adapters, and updates move
in far fewer directions than a full fine-tune. Generators and checkpoints never see
adapters: they receive the merged weights under the plain HF names.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # the policy worker imports this module with torch + transformers only
    from sft.config import AdapterConfig

PEFT_PREFIX = "base_model.model."
SUPPORTED = ("none", "lora")


@dataclass(frozen=True)
class NoAdapter:
    """`AdapterConfig(method="none")` for code that only reads `.method`, without importing
    the SFT config (and OmegaConf) into the policy worker."""

    method: str = "none"


NO_ADAPTER = NoAdapter()


def check_adapter(cfg: AdapterConfig) -> None:
    from core.config import check_choice

    check_choice("adapter.method", cfg.method, SUPPORTED)


def merged_state_dict(state: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """HF-named weights of a peft LoRA state dict with every adapter folded in: W + s * B @ A."""
    out = {}
    for name, tensor in state.items():
        if ".lora_A." in name or ".lora_B." in name:
            continue
        key = name.removeprefix(PEFT_PREFIX)
        if ".base_layer." in name:
            stem, _, leaf = name.partition(".base_layer.")
            if leaf == "weight":
                a, b = state[f"{stem}.lora_A.default.weight"], state[f"{stem}.lora_B.default.weight"]
                tensor = tensor + scaling * (b.to(tensor.dtype) @ a.to(tensor.dtype))
            key = key.replace(".base_layer.", ".")
        out[key] = tensor
    return out


def adapters_disabled(model: nn.Module, cfg: AdapterConfig):
    """Context in which `model` computes the base (reference) policy."""
    if cfg.method != "lora":
        return contextlib.nullcontext()
    return getattr(model, "module", model).disable_adapter()


def base_model(model: nn.Module, cfg: AdapterConfig) -> nn.Module:
    """The HF model inside any wrapper (DeepSpeed engine, peft), for `save_pretrained`."""
    inner = getattr(model, "module", model)
    return inner.get_base_model() if cfg.method == "lora" else inner
