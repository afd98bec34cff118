"""Offline preference training from a fixed set of pairs (DPO / IPO / SimPO / RPO).

The reference is the starting policy, so its log-probs are computed once, before the first
step, with the policy itself: no second model is kept in memory.
"""
from __future__ import annotations

import random
from typing import Any

from core.metrics import MetricsWriter, Progress
from rl.preference.batch import PairBatch
from rl.preference.losses import PreferenceLossConfig
from rl.preference.policy import heldout_accuracy


def epoch_batches(n: int, batch_size: int, seed: int):
    """Endless shuffled mini-batches of indices, reshuffled every epoch."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for s in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield order[s:s + batch_size]


def train_offline(policy, train: PairBatch, test: PairBatch, loss: PreferenceLossConfig, steps: int,
                  batch_size: int, eval_every: int, metrics: MetricsWriter, seed: int = 0) -> dict[str, Any]:
    if loss.needs_reference:
        train.ref_chosen, train.ref_rejected = policy.sequence_logprobs(train)
    before = heldout_accuracy(policy, test)
    metrics.log(0, before)
    print(f"[pref] before training: {before}", flush=True)
    progress = Progress("pref", steps)
    batches = epoch_batches(len(train), batch_size, seed)
    for step in range(1, steps + 1):
        stats = policy.preference_step(train.select(next(batches)), loss)
        record = {f"pref/{k}": v for k, v in stats.items()}
        if eval_every and step % eval_every == 0 and step != steps:
            record.update(heldout_accuracy(policy, test))
        metrics.log(step, record)
        progress.update(step, loss=stats["loss"], acc=stats["accuracy"], margin=stats["margin"],
                        heldout=record.get("pref_accuracy", float("nan")))
    after = heldout_accuracy(policy, test)
    metrics.log(steps, {**after, "final": 1})
    return {"pref_accuracy_before": before["pref_accuracy"], "pref_accuracy_after": after["pref_accuracy"],
            **{f"before_{k}": v for k, v in before.items()}, **{f"after_{k}": v for k, v in after.items()},
            "train_pairs": len(train), "heldout_pairs": len(test), "steps": steps}
