"""Offline preference training from a fixed set of pairs (DPO / IPO / SimPO / RPO).

The reference is the starting policy, so its log-probs are computed once, before the first
step, with the policy itself: no second model is kept in memory. Those reference log-probs
are the preference stage's own state: a core.checkpointer checkpoint (every
`checkpoint_every` steps) holds them and the batch position next to the policy's resume
state (weights, optimizer, schedule, RNG), so a resumed run keeps the *initial* policy as
its reference and continues the same batch order.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from core.checkpointer import Checkpointer
from core.metrics import MetricsWriter, Progress
from rl.preference.batch import PairBatch
from rl.preference.losses import PreferenceLossConfig
from rl.preference.policy import heldout_accuracy

class epoch_batches:  # noqa: N801 -- used like the generator it replaces
    """Endless shuffled mini-batches of indices, reshuffled every epoch. Its checkpoint state
    is the number of batches drawn (a resumed run replays the shuffles up to there)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._it, self.drawn = self._batches(), 0

    def _batches(self):
        rng = random.Random(self.seed)
        while True:
            order = list(range(self.n))
            rng.shuffle(order)
            for s in range(0, self.n - self.batch_size + 1 if self.n >= self.batch_size else 1, self.batch_size):
                yield order[s:s + self.batch_size]

    def __iter__(self):
        return self

    def __next__(self) -> list[int]:
        self.drawn += 1
        return next(self._it)

    def state_dict(self) -> dict[str, int]:
        return {"drawn": self.drawn, "n": self.n, "batch_size": self.batch_size, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        saved = (state["n"], state["batch_size"], state["seed"])
        if saved != (self.n, self.batch_size, self.seed):
            raise ValueError(f"checkpoint batches (pairs, batch_size, seed) = {saved}, this run "
                             f"{(self.n, self.batch_size, self.seed)}: not the same data")
        self._it, self.drawn = self._batches(), 0
        for _ in range(state["drawn"]):
            next(self)


class ReferenceLogprobs:
    """The training pairs' reference log-probs (the starting policy's) as checkpoint state."""

    def __init__(self, train: PairBatch):
        self.train = train

    def state_dict(self) -> dict[str, Any]:
        return {"ref_chosen": self.train.ref_chosen, "ref_rejected": self.train.ref_rejected}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.train.ref_chosen, self.train.ref_rejected = state["ref_chosen"], state["ref_rejected"]


def train_offline(policy, train: PairBatch, test: PairBatch, loss: PreferenceLossConfig, steps: int,
                  batch_size: int, eval_every: int, metrics: MetricsWriter, seed: int = 0,
                  checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0,
                  resume_from: str | Path | None = None) -> dict[str, Any]:
    start = 0
    batches = epoch_batches(len(train), batch_size, seed)
    ckpt = Checkpointer(checkpoint_dir or ".")  # the root is only written to when checkpoint_dir is set
    ckpt.register("batches", batches)
    ckpt.register("reference_logprobs", ReferenceLogprobs(train))
    if resume_from:
        state = ckpt.load(resume_from, policy=policy)
        start, before = state["step"], state["meta"]["before"]
        print(f"[pref] resumed from {resume_from} at step {start}", flush=True)
    else:
        if loss.needs_reference:
            train.ref_chosen, train.ref_rejected = policy.sequence_logprobs(train)
        before = heldout_accuracy(policy, test)
        metrics.log(0, before)
        print(f"[pref] before training: {before}", flush=True)
    progress = Progress("pref", steps)
    for step in range(start + 1, steps + 1):
        stats = policy.preference_step(train.select(next(batches)), loss)
        record = {f"pref/{k}": v for k, v in stats.items()}
        if eval_every and step % eval_every == 0 and step != steps:
            record.update(heldout_accuracy(policy, test))
        metrics.log(step, record)
        progress.update(step, loss=stats["loss"], acc=stats["accuracy"], margin=stats["margin"],
                        heldout=record.get("pref_accuracy", float("nan")))
        if checkpoint_dir and checkpoint_every and step % checkpoint_every == 0 and step != steps:
            ckpt.save(step, {"before": before}, policy)
    after = heldout_accuracy(policy, test)
    metrics.log(steps, {**after, "final": 1})
    return {"pref_accuracy_before": before["pref_accuracy"], "pref_accuracy_after": after["pref_accuracy"],
            **{f"before_{k}": v for k, v in before.items()}, **{f"after_{k}": v for k, v in after.items()},
            "train_pairs": len(train), "heldout_pairs": len(test), "steps": steps, "resumed_from_step": start}
