"""Preference steps interleaved with GRPO in one job, through `GRPOTrainer.step_hooks`.

Every `every_grpo_steps` GRPO steps the hook resets the preference reference to the
current policy, runs `preference_steps` preference steps on the same policy workers
(`trainer.policy`) and re-syncs the generators, then returns its metrics (prefixed
`pref/`) for the same metrics.jsonl record as the GRPO step.
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


def offline_source(pairs: PairBatch, batch_size: int, seed: int) -> PairSource:
    batches = epoch_batches(len(pairs), batch_size, seed)
    return lambda trainer, step, m: (pairs.select(next(batches)), {})


class PreferenceHook:
    def __init__(self, cfg: InterleaveConfig, loss: PreferenceLossConfig, source: PairSource):
        self.cfg, self.loss, self.source = cfg, loss, source
        self.blocks = 0

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
