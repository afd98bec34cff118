"""Parameter-efficient fine-tuning switch: full, LoRA (peft) or Tied-LoRA; merge for export."""
from __future__ import annotations

from torch import nn

from sft.config import AdapterConfig
from sft.tied_lora import apply_tied_lora, merge_tied_lora

METHODS = ("none", "lora", "tied_lora")


def apply_adapter(model: nn.Module, cfg: AdapterConfig) -> nn.Module:
    """Return the module to train (the same model, a peft wrapper, or the model with Tied-LoRA)."""
    if cfg.method not in METHODS:
        raise ValueError(f"adapter.method must be one of {METHODS}, got {cfg.method!r}")
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        return get_peft_model(model, LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                                target_modules=list(cfg.target_modules), task_type="CAUSAL_LM"))
    if cfg.method == "tied_lora":
        apply_tied_lora(model, cfg.rank, cfg.tied_preset)
    return model


def merge_adapter(model: nn.Module, cfg: AdapterConfig) -> nn.Module:
    """The plain HF model with any adapter folded into its weights."""
    if cfg.method == "lora":
        return model.merge_and_unload()
    if cfg.method == "tied_lora":
        return merge_tied_lora(model)
    return model


def num_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
