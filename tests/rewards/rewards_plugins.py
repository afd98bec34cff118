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


def sleeps_forever(sample: RewardSample) -> float:
    time.sleep(10**6)
    return 1.0


def segfaults(sample: RewardSample) -> float:
    import ctypes

    ctypes.string_at(0)
    return 1.0


def hangs_on_marked(samples: list[RewardSample]) -> list[float]:
    """Batched: scores each sample by its length, but never returns once a sample says 'hang'."""
    for s in samples:
        if "hang" in s.completion:
            time.sleep(10**6)
    return [len(s.completion) / 100 for s in samples]


hangs_on_marked.reforge_batched = True


def slow_length(sample: RewardSample) -> float:
    """Length score after a pause; notes that it started in reward_spec['started_dir']."""
    import os

    started = sample.reward_spec.get("started_dir")
    if started:
        open(os.path.join(started, f"{sample.id}-{os.getpid()}"), "w").close()
    time.sleep(float(sample.reward_spec.get("pause_s", 0.5)))
    return len(sample.completion) / 100


def kills_its_process(sample: RewardSample) -> float:
    """Runs in the caller (a Ray reward actor) and kills it when the sample asks to."""
    import os
    import signal

    if sample.reward_spec.get("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    return 1.0


kills_its_process.reforge_runs_in = "caller"
