"""The optimisation settings every trainer shares (SFT, GRPO policy workers, NAS distillation)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """AdamW + warmup/decay schedule + the sharding backend.

    Defaults follow the Llama-Nemotron SFT recipe: AdamW, linear warmup over ~10% of the
    steps, cosine decay to `min_lr`.
    """

    lr: float = 1e-4
    min_lr: float = 0.0  # floor of the cosine / linear decay
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # AdamW (beta1, beta2)
    eps: float = 1e-8
    warmup_ratio: float = 0.1  # of total_steps; ignored when warmup_steps > 0
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine | linear | constant (after warmup)
    total_steps: int = 1000  # optimizer steps; the schedule's horizon
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    grad_accum: int = 1  # micro-batches per optimizer step (the trainer's loop uses it)
    backend: str = "none"  # none | fsdp2 | deepspeed
    zero_stage: int = 2  # deepspeed only: 1, 2 or 3
    dtype: str = "float32"  # float32 | bfloat16 (bf16 = mixed precision: fp32 master weights)
    seed: int = 0

    def num_warmup_steps(self) -> int:
        if self.warmup_steps > 0:
            return self.warmup_steps
        return int(round(self.warmup_ratio * self.total_steps))
