"""Third-party-style rewards the plugin-API tests load by `module:function` name."""
from __future__ import annotations

import asyncio
import random
import time

from rewards import RewardResult, RewardSample


def length_reward(sample: RewardSample) -> float:
    return len(sample.completion) / 100


async def async_vowels(sample: RewardSample) -> RewardResult:
    await asyncio.sleep(0.01)
    return RewardResult(sum(c in "aeiou" for c in sample.completion), {"async": True})


def batched_rank(samples: list[RewardSample]) -> list[float]:
    order = sorted(range(len(samples)), key=lambda i: len(samples[i].completion))
    ranks = [0.0] * len(samples)
    for rank, i in enumerate(order):
        ranks[i] = float(rank)
    return ranks


batched_rank.reforge_batched = True


def returns_none(sample: RewardSample) -> None:
    return None


def raises(sample: RewardSample) -> float:
    raise RuntimeError(f"broken plugin on {sample.id}")


def hangs(sample: RewardSample) -> float:
    time.sleep(30)
    return 1.0


def coin(sample: RewardSample) -> float:
    return random.random()


class Unpicklable:
    def __init__(self) -> None:
        import threading
        self.lock = threading.Lock()

    def __call__(self, sample: RewardSample) -> float:
        return 1.0


unpicklable = Unpicklable()
