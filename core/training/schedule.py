"""Learning-rate schedules as a multiplier of the peak lr (for `LambdaLR`)."""
from __future__ import annotations

import math
from typing import Callable

from core.training.config import TrainConfig

SCHEDULES = ("cosine", "linear", "constant")


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """Linear warmup from 0 to lr, then cosine / linear decay to min_lr or constant."""
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
    warmup = cfg.num_warmup_steps()
    total = max(cfg.total_steps, warmup + 1)
    floor = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.schedule == "constant":
            return 1.0
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
        return floor + (1 - floor) * decay

    return factor
