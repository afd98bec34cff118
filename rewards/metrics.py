"""Per-reward counters the GRPO loop logs: mean score, failures, timeouts, time spent."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class RewardMetrics:
    calls: int = 0
    score_sum: float = 0.0
    failures: int = 0          # raised, or returned something that is not a score
    timeouts: int = 0
    seconds: float = 0.0

    @property
    def mean(self) -> float:
        return self.score_sum / self.calls if self.calls else 0.0

    def add(self, other: "RewardMetrics") -> None:
        self.calls += other.calls
        self.score_sum += other.score_sum
        self.failures += other.failures
        self.timeouts += other.timeouts
        self.seconds += other.seconds

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "mean": self.mean}


@dataclass
class PoolFaults:
    """What the reward pool survived in one call (or, summed, over a run)."""

    actor_restarts: int = 0       # reward actors found dead and replaced
    samples_retried: int = 0      # samples re-sent to a replacement actor once
    samples_lost: int = 0         # samples scored 0 because their retry failed too

    def add(self, other: "PoolFaults") -> None:
        self.actor_restarts += other.actor_restarts
        self.samples_retried += other.samples_retried
        self.samples_lost += other.samples_lost

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def merge(parts: list[dict[str, RewardMetrics]]) -> dict[str, RewardMetrics]:
    total: dict[str, RewardMetrics] = {}
    for part in parts:
        for name, m in part.items():
            total.setdefault(name, RewardMetrics()).add(m)
    return total
