"""Held-out accuracy for other recipes' summaries (SFT, GRPO, NAS): one call, same verifiers.

Greedy by default, like the paper's `off` protocol, so before/after numbers of a run do
not move with sampling noise. Accuracy is the mean correctness over all samples (pass@1).
"""
from __future__ import annotations

from typing import Any

from core.data.schema import Row, validate_row
from core.engines.base import SamplingSettings
from evaluation.generation import generate_chunk
from evaluation.results import generation_metrics
from evaluation.scoring import Scorer
from evaluation.suites import Job

GREEDY = SamplingSettings(n=1, temperature=0.0, max_tokens=256)


def heldout_accuracy(engine, tokenizer, rows: list[Row | dict[str, Any]], mode: str = "off",
                     sampling: SamplingSettings = GREEDY, scorer: Scorer | None = None) -> dict[str, Any]:
    """{"accuracy", "by_difficulty": {level: accuracy}, "n": prompts, "reward_failures"}."""
    if scorer is None:
        from evaluation.scoring import RewardScorer

        scorer = RewardScorer()
    rows = [r if isinstance(r, Row) else validate_row(r, f"row-{i}") for i, r in enumerate(rows)]
    jobs = [Job(f"heldout/{i}/{mode}", "heldout", "generate", mode, r) for i, r in enumerate(rows)]
    records = generate_chunk(engine, tokenizer, jobs, sampling, scorer) if jobs else []
    overall = generation_metrics(records, [1])
    levels: dict[str, list] = {}
    for r in records:
        levels.setdefault(str(r["difficulty"]), []).append(r)
    return {
        "accuracy": overall["pass@k"]["1"] if records else 0.0,
        "by_difficulty": {k: generation_metrics(v, [1])["pass@k"]["1"] for k, v in sorted(levels.items())},
        "n": len(records),
        "reward_failures": overall.get("reward_failures", 0),
    }
