"""Trainer -> generator weight sync, and the parity check that follows it.

Weights travel bucket by bucket through the generators' transport (rl.weight_transport:
the Ray object store, or a torch.distributed collective). After every sync a fixed
probe's per-token logprobs from each generator must match the trainer's within a
tolerance; a mismatch means the generators sample from a different policy than the one
being trained (stale prefix cache, a weight that failed to load, a dtype mix-up), so the
run stops with a diagnostic instead of learning from wrong data.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from rl.batch import RolloutBatch


class SyncParityError(RuntimeError):
    """Generators and trainer disagree on the probe's logprobs after a sync."""


@dataclass
class SyncReport:
    seconds: float
    bytes: float
    buckets: int
    max_logprob_diff: float | None


def probe_from(batch: RolloutBatch, n: int) -> RolloutBatch:
    """Fixed probe sequences: the first samples of the first rollout, kept for the whole run."""
    return batch.select(list(range(min(n, len(batch)))))


def parity_diff(policy, generators, probe: RolloutBatch) -> tuple[float, str]:
    trainer = policy.logprobs(probe)
    worst, where = 0.0, ""
    for engine, answers in enumerate(generators.prompt_logprobs_each(probe.sequences, probe.prompt_lens)):
        for s, (a, b) in enumerate(zip(trainer, answers)):
            for t, (x, y) in enumerate(zip(a, b)):
                if abs(x - y) > worst:
                    worst, where = abs(x - y), f"engine {engine}, probe {s}, token {t}: trainer {x:.6f} vs generator {y:.6f}"
    return worst, where


def sync_weights(policy, generators, bucket_mb: float, probe: RolloutBatch | None, tolerance: float) -> SyncReport:
    """Send the policy's weights through `generators.transport`, then check parity on `probe`."""
    start = time.perf_counter()
    sent = generators.transport.send(policy, generators, int(bucket_mb * 2**20))
    seconds = time.perf_counter() - start
    diff = None
    if probe is not None:
        diff, where = parity_diff(policy, generators, probe)
        if diff > tolerance:
            raise SyncParityError(
                f"after weight sync the generator's logprobs differ from the trainer's by {diff:.3g} "
                f"(tolerance {tolerance:g}) at {where}. The generators would sample from another policy; "
                "check that every weight loaded (names, dtype) and that the prefix cache was reset.")
    return SyncReport(seconds, float(sent.bytes), sent.buckets, diff)
