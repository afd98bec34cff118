"""Group-relative advantages (GRPO): every sample is compared with its prompt's group.

Modes: `std` divides by the group's standard deviation (the GRPO paper), `no_std` only
centres (Dr. GRPO: no per-prompt difficulty re-weighting), `loo` uses the leave-one-out
mean of the other samples (RLOO's baseline, unbiased).
"""
from __future__ import annotations

import torch

ADVANTAGE_MODES = ("std", "no_std", "loo")


def group_advantages(rewards: torch.Tensor, mode: str = "std", eps: float = 1e-6) -> torch.Tensor:
    """rewards: [groups, samples_per_group] -> advantages of the same shape."""
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [groups, samples], got shape {tuple(rewards.shape)}")
    g = rewards.shape[1]
    mean = rewards.mean(dim=1, keepdim=True)
    if mode == "std":
        # Unbiased std, as the GRPO reference implementations use.
        std = rewards.std(dim=1, keepdim=True, unbiased=True) if g > 1 else torch.zeros_like(mean)
        return (rewards - mean) / (std + eps)
    if mode == "no_std":
        return rewards - mean
    if mode == "loo":
        if g < 2:
            raise ValueError("leave-one-out needs at least 2 samples per group")
        others = (rewards.sum(dim=1, keepdim=True) - rewards) / (g - 1)
        return rewards - others
    raise ValueError(f"advantage mode must be one of {ADVANTAGE_MODES}, got {mode!r}")


def zero_variance_groups(rewards: torch.Tensor, tol: float = 1e-8) -> torch.Tensor:
    """Boolean [groups]: groups whose samples all scored the same (no learning signal)."""
    return (rewards.max(dim=1).values - rewards.min(dim=1).values) <= tol
