"""Trainer -> generator weight transport: one interface, two ways, bucket by bucket.

Both gather the policy one bucket at a time (rl.weight_stream: every policy rank takes
part, one bucket of whole layers per collective) and the engines load each bucket before
the next is gathered, so the extra memory on either side is about one bucket, never a
second model.

- `object_store`: policy rank 0 puts the bucket in the Ray object store, every engine
  fetches and loads it. Works wherever Ray does, across nodes, with vLLM or HF engines.
- `collective`: policy rank 0 and every engine worker form one torch.distributed group
  (core.engines.weight_group: gloo on CPU, NCCL on GPU, the same code); rank 0 broadcasts
  the bucket as one flat buffer and each vLLM worker loads it through the worker extension
  (core.engines.vllm_rlhf) via `collective_rpc`. Weights never pass through Ray.

The parity probe that follows every sync is rl.weight_sync's, the same for both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import ray

from core.config import check_choice

TRANSPORTS = ("object_store", "collective")


@dataclass
class Sent:
    bytes: int  # received by each engine
    buckets: int


class WeightTransport(Protocol):
    name: str

    def send(self, policy, generators, bucket_bytes: int) -> Sent:
        """Every policy rank gathers, every engine loads; returns when the engines hold the weights."""
        ...

    def close(self) -> None:
        ...


class ObjectStoreTransport:
    name = "object_store"

    def send(self, policy, generators, bucket_bytes: int) -> Sent:
        plan = policy.weight_plan(bucket_bytes)
        received = 0
        for bucket in plan:
            refs = policy.put_weight_bucket(bucket)  # every rank gathers; rank 0's [ref]
            received += generators.update_weights(refs)[0]
            del refs  # the last reference: the object store frees the bucket
        return Sent(received, len(plan))

    def close(self) -> None:
        pass


class CollectiveTransport:
    """One weight group per (policy, generators) pair, joined once at construction."""

    name = "collective"

    def __init__(self, policy, generators):
        self.policy, self.generators = policy, generators
        host, port = ray.get(policy.workers[0].address.remote())
        ranks = ray.get([w.group_ranks.remote() for w in generators.workers])
        world = 1 + sum(ranks)
        offsets = [1 + sum(ranks[:e]) for e in range(len(ranks))]
        ray.get([w.open_weight_group.remote(host, port, world) for w in policy.workers]
                + [w.open_weight_group.remote(host, port, off, world) for w, off in zip(generators.workers, offsets)])

    def send(self, policy, generators, bucket_bytes: int) -> Sent:
        if policy is not self.policy or generators is not self.generators:
            raise ValueError("this collective transport was opened for another policy / generator pair")
        plan = policy.weight_plan(bucket_bytes)
        specs = [list(b.specs) for b in plan]
        engines = [w.receive_weight_buckets.remote(specs) for w in generators.workers]
        ray.get([w.send_weight_buckets.remote(plan) for w in policy.workers])
        return Sent(ray.get(engines)[0], len(plan))

    def close(self) -> None:
        ray.get([w.close_weight_group.remote() for w in self.policy.workers]
                + [w.close_weight_group.remote() for w in self.generators.workers])


def make_transport(name: str, policy, generators) -> WeightTransport:
    check_choice("sync.transport", name, TRANSPORTS)
    return CollectiveTransport(policy, generators) if name == "collective" else ObjectStoreTransport()
