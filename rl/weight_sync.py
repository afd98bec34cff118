"""Trainer -> generator weight sync, and the parity check that follows it.

Weights travel bucket by bucket through the generators' transport (rl.weight_transport:
the Ray object store, or a torch.distributed collective). After every sync a fixed
probe's per-token logprobs from each generator must match the trainer's within a
tolerance; a mismatch means the generators sample from a different policy than the one
being trained (stale prefix cache, a weight that failed to load, a dtype mix-up), so the
run stops with a diagnostic instead of learning from wrong data. A generator engine that
was restarted mid-run loads the policy's current weights on its own (`load_engine`) and
passes the same check before it serves.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import ray

from rl.batch import RolloutBatch


class SyncParityError(RuntimeError):
    """Generators and trainer disagree on the probe's logprobs after a sync."""


@dataclass
class SyncReport:
    seconds: float
    bytes: float
    buckets: int
    max_logprob_diff: float | None


def probe_from(batch: RolloutBatch, n: int, max_model_len: int) -> RolloutBatch:
    """Fixed probe sequences: the first samples of the first rollout, kept for the whole run.
    Each is cut to `max_model_len - 1` ids: an engine scores prompt log-probs only for a
    sequence with room for one more token, and a multi-turn episode can fill the window."""
    picked = batch.select(list(range(min(n, len(batch)))))
    return RolloutBatch([s[:max_model_len - 1] for s in picked.sequences],
                        [min(p, max_model_len - 2) for p in picked.prompt_lens])


def parity_diff(policy, generators, probe: RolloutBatch, engines: list[int] | None = None) -> tuple[float, str]:
    """The largest |trainer - generator| logprob on the probe over `engines` (all by default)."""
    trainer = policy.logprobs(probe)
    engines = list(range(len(generators.workers))) if engines is None else engines
    worst, where = 0.0, ""
    for engine, answers in zip(engines, generators.prompt_logprobs_each(probe.sequences, probe.prompt_lens, engines)):
        for s, (a, b) in enumerate(zip(trainer, answers)):
            for t, (x, y) in enumerate(zip(a, b)):
                if abs(x - y) > worst:
                    worst, where = abs(x - y), f"engine {engine}, probe {s}, token {t}: trainer {x:.6f} vs generator {y:.6f}"
    return worst, where


def check_parity(policy, generators, probe: RolloutBatch, tolerance: float, engines: list[int] | None = None) -> float:
    """parity_diff, raising SyncParityError above `tolerance`."""
    diff, where = parity_diff(policy, generators, probe, engines)
    if diff > tolerance:
        raise SyncParityError(
            f"after weight sync the generator's logprobs differ from the trainer's by {diff:.3g} "
            f"(tolerance {tolerance:g}) at {where}. The generators would sample from another policy; "
            "check that every weight loaded (names, dtype) and that the prefix cache was reset.")
    return diff


def sync_weights(policy, generators, bucket_mb: float, probe: RolloutBatch | None, tolerance: float) -> SyncReport:
    """Send the policy's weights through the generators' transport, then check parity on `probe`
    (which a restarted engine is checked on too, from now on)."""
    start = time.perf_counter()
    sent = generators.send_weights(policy, int(bucket_mb * 2**20))
    seconds = time.perf_counter() - start
    diff = None
    if probe is not None:
        generators.probe = probe
        diff = check_parity(policy, generators, probe, tolerance)
    return SyncReport(seconds, float(sent.bytes), sent.buckets, diff)


def load_engine(policy, generators, engine: int, bucket_bytes: int) -> int:
    """The policy's current weights into one engine only (a restarted one) through the object
    store, bucket by bucket; returns the bytes it received."""
    worker = generators.workers[engine]
    received = 0
    for bucket in policy.weight_plan(bucket_bytes):
        refs = policy.put_weight_bucket(bucket)
        received += ray.get(worker.update_weights.remote(refs))
        del refs
    return received
