"""Which packed rows form each optimizer step, as a pure function of the step number.

Because the plan depends only on (seed, step), the data position of a checkpoint is just
the step: resuming needs no iterator state, and any world size sees the same global batch
(rank r takes micro-batches r*grad_accum ... of it), so a 2-process run matches one process
with the same global batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchPlan:
    num_rows: int
    rows_per_micro: int
    grad_accum: int = 1
    world_size: int = 1
    seed: int = 0
    shuffle: bool = True

    @property
    def rows_per_step(self) -> int:
        return self.rows_per_micro * self.grad_accum * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        n = self.num_rows // self.rows_per_step
        if n == 0:
            raise ValueError(f"{self.num_rows} packed rows < one global batch of {self.rows_per_step}")
        return n

    def _order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.num_rows))
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.num_rows, generator=g).tolist()

    def global_rows(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.steps_per_epoch)
        return self._order(epoch)[k * self.rows_per_step:(k + 1) * self.rows_per_step]

    def micro_batches(self, step: int, rank: int = 0) -> list[list[int]]:
        rows = self.global_rows(step)
        per_rank = self.rows_per_micro * self.grad_accum
        mine = rows[rank * per_rank:(rank + 1) * per_rank]
        return [mine[i:i + self.rows_per_micro] for i in range(0, per_rank, self.rows_per_micro)]
