"""What the GRPO loop needs from rewards: score (row, completion) pairs, per function.

`Scorer` is the seam between `rl/` and `rewards/`; `rl.reward_adapter` builds one over the
rewards package's pool.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from core.data.schema import Row


@dataclass
class Scores:
    total: list[float]  # weighted sum per sample
    per_function: dict[str, list[float]]  # raw score of every reward function per sample
    failures: dict[str, int] = field(default_factory=dict)  # raised or timed out, per function
    faults: dict[str, int] = field(default_factory=dict)  # reward actors replaced, samples retried / lost


class Scorer(Protocol):
    def score(self, rows: list[Row], completions: list[str], ids: list[str]) -> Scores:
        ...
