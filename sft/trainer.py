"""The SFT loop on top of core.training: one optimizer step = grad_accum packed micro-batches
per rank, loss averaged over every response token of the global batch."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from core.training import TrainingBackend, dist
from core.training.backend import dtype_of
from sft.batching import BatchPlan
from sft.checkpoint import save_checkpoint
from sft.loss import batch_loss_sum
from sft.packing import PackedRow, collate


@dataclass
class StepStats:
    step: int  # 1-based count of optimizer steps done
    loss: float  # global token-mean cross-entropy
    tokens: int  # tokens (incl. padding) processed by this rank
    loss_tokens: int  # response tokens in the global batch
    grad_norm: float
    lr: float
    seconds: float


def train_step(backend: TrainingBackend, rows: list[PackedRow], micro: list[list[int]],
               step: int) -> StepStats:
    start = time.time()
    device = dist.device()
    batches = [collate([rows[i] for i in ids]).to(device) for ids in micro]
    global_n = backend.global_count(sum(b.num_loss_tokens for b in batches))
    mask_dtype = dtype_of(backend.cfg.dtype)
    local_sum = 0.0
    for b in batches:
        s = batch_loss_sum(backend.model, b, mask_dtype)
        backend.backward(s / global_n)
        local_sum += s.item()
    opt = backend.optimizer_step()
    loss = dist.all_reduce_sum(local_sum) / global_n
    tokens = sum(b.input_ids.numel() for b in batches)
    return StepStats(step + 1, loss, tokens, int(global_n), opt["grad_norm"], opt["lr"], time.time() - start)


def fit(backend: TrainingBackend, rows: list[PackedRow], plan: BatchPlan, total_steps: int,
        start_step: int = 0, on_step: Callable[[StepStats], None] | None = None,
        checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0,
        stop_after: int | None = None) -> list[StepStats]:
    """Run steps [start_step, total_steps); checkpoint every `checkpoint_every` steps.

    `stop_after` ends early after that many steps (an interruption, for resume tests).
    """
    backend.model.train()
    history = []
    for step in range(start_step, total_steps):
        stats = train_step(backend, rows, plan.micro_batches(step, backend.rank), step)
        history.append(stats)
        if on_step is not None:
            on_step(stats)
        if checkpoint_dir and checkpoint_every and stats.step % checkpoint_every == 0:
            save_checkpoint(checkpoint_dir, backend, stats.step)
        if stop_after is not None and len(history) >= stop_after:
            break
    return history
