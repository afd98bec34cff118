"""Offline preference training from a fixed set of pairs (DPO / IPO / SimPO / RPO).

The reference is the starting policy, so its log-probs are computed once, before the first
step, with the policy itself: no second model is kept in memory. Those reference log-probs
are the preference stage's own state: a checkpoint (every `checkpoint_every` steps) holds
them next to the policy's resume state (weights, optimizer, schedule, RNG), so a resumed
run keeps the *initial* policy as its reference and continues the same batch order.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from core.metrics import MetricsWriter, Progress
from rl.preference.batch import PairBatch
from rl.preference.losses import PreferenceLossConfig
from rl.preference.policy import heldout_accuracy

STATE_FILE = "preference_state.json"  # written last: marks a checkpoint complete


def epoch_batches(n: int, batch_size: int, seed: int):
    """Endless shuffled mini-batches of indices, reshuffled every epoch."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for s in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield order[s:s + batch_size]


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    ckpts = sorted(Path(checkpoint_dir).glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    done = [c for c in ckpts if (c / STATE_FILE).exists()]
    return done[-1] if done else None


def save_checkpoint(policy, directory: Path, step: int, train: PairBatch, before: dict[str, float]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    policy.save_state(str(directory))
    state = {"step": step, "before": before, "train_pairs": len(train),
             "ref_chosen": train.ref_chosen, "ref_rejected": train.ref_rejected}
    (directory / STATE_FILE).write_text(json.dumps(state))


def train_offline(policy, train: PairBatch, test: PairBatch, loss: PreferenceLossConfig, steps: int,
                  batch_size: int, eval_every: int, metrics: MetricsWriter, seed: int = 0,
                  checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0,
                  resume_from: str | Path | None = None) -> dict[str, Any]:
    start = 0
    if resume_from:
        resume_from = Path(resume_from)
        state = json.loads((resume_from / STATE_FILE).read_text())
        if state["train_pairs"] != len(train):
            raise ValueError(f"{resume_from}: checkpoint has {state['train_pairs']} training pairs, "
                             f"this run {len(train)}: not the same data")
        policy.load_state(str(resume_from))
        train.ref_chosen, train.ref_rejected = state["ref_chosen"], state["ref_rejected"]
        start, before = state["step"], state["before"]
        print(f"[pref] resumed from {resume_from} at step {start}", flush=True)
    else:
        if loss.needs_reference:
            train.ref_chosen, train.ref_rejected = policy.sequence_logprobs(train)
        before = heldout_accuracy(policy, test)
        metrics.log(0, before)
        print(f"[pref] before training: {before}", flush=True)
    progress = Progress("pref", steps)
    batches = epoch_batches(len(train), batch_size, seed)
    for _ in range(start):  # the same batch order as an uninterrupted run
        next(batches)
    for step in range(start + 1, steps + 1):
        stats = policy.preference_step(train.select(next(batches)), loss)
        record = {f"pref/{k}": v for k, v in stats.items()}
        if eval_every and step % eval_every == 0 and step != steps:
            record.update(heldout_accuracy(policy, test))
        metrics.log(step, record)
        progress.update(step, loss=stats["loss"], acc=stats["accuracy"], margin=stats["margin"],
                        heldout=record.get("pref_accuracy", float("nan")))
        if checkpoint_dir and checkpoint_every and step % checkpoint_every == 0 and step != steps:
            save_checkpoint(policy, Path(checkpoint_dir) / f"step_{step}", step, train, before)
    after = heldout_accuracy(policy, test)
    metrics.log(steps, {**after, "final": 1})
    return {"pref_accuracy_before": before["pref_accuracy"], "pref_accuracy_after": after["pref_accuracy"],
            **{f"before_{k}": v for k, v in before.items()}, **{f"after_{k}": v for k, v in after.items()},
            "train_pairs": len(train), "heldout_pairs": len(test), "steps": steps, "resumed_from_step": start}
