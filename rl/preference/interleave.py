"""Preference steps interleaved with GRPO in one job, through `GRPOTrainer.step_hooks`.

Every `every_grpo_steps` GRPO steps the hook resets the preference reference to the
current policy, runs `preference_steps` preference steps on the same policy workers
(`trainer.policy`) and re-syncs the generators, then returns its metrics (prefixed
`pref/`) for the same metrics.jsonl record as the GRPO step. The hook is checkpointed with
the GRPO run (its block count and its pair source's position, see core.checkpointer).
"""
from __future__ import annotations

from typing import Any, Callable

from rl.preference.batch import PairBatch
from rl.preference.config import InterleaveConfig
from rl.preference.losses import PreferenceLossConfig
from rl.preference.offline import epoch_batches
from rl.preference.policy import with_reference
from rl.weight_sync import sync_weights

# (trainer, grpo_step, preference_step_index) -> pairs (and extra metrics)
PairSource = Callable[[Any, int, int], tuple[PairBatch, dict[str, float]]]


class offline_source:  # noqa: N801 -- a PairSource
    """Pairs in shuffled mini-batches; its checkpoint state is the batch position."""

    def __init__(self, pairs: PairBatch, batch_size: int, seed: int):
        self.pairs, self.batches = pairs, epoch_batches(len(pairs), batch_size, seed)

    def __call__(self, trainer, step: int, m: int) -> tuple[PairBatch, dict[str, float]]:
        return self.pairs.select(next(self.batches)), {}

    def state_dict(self) -> dict[str, Any]:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches.load_state_dict(state)


class PreferenceHook:
    def __init__(self, cfg: InterleaveConfig, loss: PreferenceLossConfig, source: PairSource):
        self.cfg, self.loss, self.source = cfg, loss, source
        self.blocks = 0

    def state_dict(self) -> dict[str, Any]:
        """A source that draws from a stream (offline pairs) carries its position; one that
        is a pure function of (step, m) (the online sampler) has none."""
        source = self.source.state_dict() if hasattr(self.source, "state_dict") else None
        return {"blocks": self.blocks, "source": source}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.blocks = state["blocks"]
        if state["source"] is not None:
            self.source.load_state_dict(state["source"])

    def __call__(self, trainer, step: int) -> dict[str, Any]:
        if self.cfg.every_grpo_steps <= 0 or step % self.cfg.every_grpo_steps:
            return {}
        policy = trainer.policy
        if self.loss.needs_reference:
            policy.reset_preference_reference()
        sums: dict[str, float] = {}
        done = 0
        for m in range(self.cfg.preference_steps):
            batch, extra = self.source(trainer, step, m)
            if len(batch) < policy.world_size:
                continue
            stats = policy.preference_step(with_reference(policy, batch, self.loss), self.loss)
            done += 1
            for k, v in {**stats, **extra}.items():
                sums[k] = sums.get(k, 0.0) + v
        self.blocks += 1
        record = {f"pref/{k}": v / max(done, 1) for k, v in sums.items()}
        record.update({"pref/steps": float(done), "pref/blocks": float(self.blocks)})
        sync = trainer.cfg.sync
        report = sync_weights(policy, trainer.generators, sync.bucket_mb, trainer.probe if sync.parity_check else None,
                              sync.parity_tolerance)
        if report.max_logprob_diff is not None:
            record["pref/sync_max_logprob_diff"] = report.max_logprob_diff
        return record
