"""The optimisation settings every trainer shares (SFT, GRPO policy workers, NAS distillation)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """AdamW + warmup/decay schedule + the sharding backend.

    Defaults follow the Llama-Nemotron SFT recipe: AdamW, linear warmup over ~10% of the
    steps, cosine decay to `min_lr`.
    """

    lr: float = field(default=1e-4, metadata={"help": "peak learning rate (after warmup)"})
    min_lr: float = field(default=0.0, metadata={"help": "floor of the cosine / linear decay"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW decoupled weight decay"})
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95], metadata={"help": "AdamW (beta1, beta2)"})
    eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "of total_steps; ignored when warmup_steps > 0"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warmup steps; 0 = warmup_ratio x total_steps"})
    schedule: str = field(default="cosine", metadata={"help": "cosine | linear | constant (after warmup)"})
    total_steps: int = field(default=1000, metadata={"help": "optimizer steps; the schedule's horizon"})
    grad_clip: float = field(default=1.0, metadata={"help": "max global grad norm; 0 disables clipping"})
    grad_accum: int = field(default=1, metadata={"help": (
        "micro-batches per optimizer step (the trainer's loop uses it)")})
    backend: str = field(default="none", metadata={"help": "none | fsdp2 | deepspeed"})
    zero_stage: int = field(default=2, metadata={"help": "deepspeed only: 1, 2 or 3"})
    dtype: str = field(default="float32", metadata={"help": (
        "float32 | bfloat16 (bf16 = mixed precision: fp32 master weights)")})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, dropout and data order"})

    def num_warmup_steps(self) -> int:
        if self.warmup_steps > 0:
            return self.warmup_steps
        return int(round(self.warmup_ratio * self.total_steps))
