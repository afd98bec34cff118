"""The seam between evaluation and rewards: score (row, completion, mode) samples.

Scores come from the same reward functions training uses (the rewards package), so an
evaluation number and a training reward mean the same thing. A sample is `correct` when
its reward reaches 1 (every built-in verifier scores a full solution as 1); a reward that
raises or times out scores 0 and is marked `failed`, never stopping the run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.data.schema import Row
from evaluation.answers import answer_key


@dataclass
class SampleScore:
    score: float
    correct: bool
    answer: str | None  # normalised final answer: the sample's vote for cons@k
    failed: bool = False  # the reward raised or timed out
    error: str | None = None


class Scorer(Protocol):
    def score(self, rows: list[Row], texts: list[str], modes: list[str], ids: list[str]) -> list[SampleScore]:
        ...


def sample_score(row: Row, text: str, mode: str, score: float, failed: bool, error: str | None) -> SampleScore:
    return SampleScore(score=float(score), correct=(not failed) and score >= 1.0,
                       answer=answer_key(row.reward["type"], text, mode), failed=failed, error=error)


class RewardScorer:
    """Scores each sample with the reward its row's `reward.type` names — the registered
    built-ins (`math`, `code`, `if`, `tool`) or any plugin / `package.module:function` —
    through the rewards package's pool, in-process, one pool per reward name."""

    def __init__(self, timeout_s: float = 10.0, max_concurrency: int = 4):
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self.pools: dict[str, object] = {}

    def _pool(self, name: str):
        from rewards import RewardPool

        if name not in self.pools:
            self.pools[name] = RewardPool([{"name": name, "timeout_s": self.timeout_s}], backend="local",
                                          max_concurrency=self.max_concurrency)
        return self.pools[name]

    def score(self, rows: list[Row], texts: list[str], modes: list[str], ids: list[str]) -> list[SampleScore]:
        from rewards import RewardSample

        out: list[SampleScore | None] = [None] * len(rows)
        by_type: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            by_type.setdefault(row.reward["type"], []).append(i)
        for name, idx in by_type.items():
            samples = [RewardSample(ids[i], rows[i].prompt_messages, texts[i], rows[i].reward, modes[i]) for i in idx]
            batch = self._pool(name).score(samples)
            for i, total, detail in zip(idx, batch.scores, batch.details):
                info = detail[name]["info"]
                error = info.get("error") or ("verifier timed out" if info.get("timed_out") else None)
                out[i] = sample_score(rows[i], texts[i], modes[i], total, error is not None, error)
        return out
