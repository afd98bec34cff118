"""Ray actor groups around the policy workers and the generators.

Each group hides its fan-out: a batch is sharded over the policy ranks (equal shards, so
every rank runs the same collectives), prompts are split over the generator engines and
the completions come back in request order.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import ray

from core.engines.base import Completion, SamplingSettings
from core.training import TrainConfig
from rl.batch import RolloutBatch, shard_batch, unshard
from rl.generator import GeneratorConfig, GeneratorWorker
from rl.losses import ClippedPolicyLoss
from rl.policy_worker import PolicyWorker
from rl.preference.batch import PairBatch, shard_pairs
from rl.preference.losses import PairLoss, PreferenceLossConfig
from rl.preference.worker import merge_step_stats
from sft.config import AdapterConfig


@dataclass
class PlacementConfig:
    """Where actors go. Custom resources (e.g. {"rollout": 1}) pin roles to nodes."""

    policy_world_size: int = 1
    policy_num_cpus: float = 1.0
    policy_num_gpus: float = 0.0  # 1 per rank on GPU clusters
    policy_threads: int = 2  # torch threads inside each policy rank (Ray sets 1 per CPU otherwise)
    policy_resources: dict[str, float] = field(default_factory=dict)
    generator_resources: dict[str, float] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


@ray.remote
class _PolicyActor(PolicyWorker):
    """Construction is two-phase: rank 0's address and port are only known once its actor
    is placed, and joining the process group blocks until every rank has joined."""

    def __init__(self, threads: int = 1):
        import torch

        torch.set_num_threads(threads)

    def setup(self, *args, **kwargs) -> None:
        PolicyWorker.__init__(self, *args, **kwargs)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def address(self) -> tuple[str, int]:
        return ray.util.get_node_ip_address(), _free_port()


@ray.remote
class _GeneratorActor(GeneratorWorker):
    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()


def _shards(n: int, world: int) -> list[list[int]]:
    return [list(range(r, n, world)) for r in range(world)]


class PolicyGroup:
    def __init__(self, model_dir: str, train: TrainConfig, placement: PlacementConfig, keep_reference: bool,
                 micro_batch_size: int, micro_batch_tokens: int = 0, adapter: AdapterConfig | None = None):
        world = placement.policy_world_size
        # Sharded ranks must run the same number of forwards (FSDP gathers per layer), and a
        # token cap could split their shards differently: the cap is for one rank only.
        micro_batch_tokens = micro_batch_tokens if world == 1 else 0
        opts = dict(num_cpus=placement.policy_num_cpus, num_gpus=placement.policy_num_gpus,
                    resources=placement.policy_resources or None)
        self.workers = [_PolicyActor.options(**opts).remote(threads=placement.policy_threads) for _ in range(world)]
        master, port = ray.get(self.workers[0].address.remote())
        ray.get([w.setup.remote(model_dir, train, rank=rank, world_size=world, master_addr=master,
                                master_port=port, keep_reference=keep_reference, micro_batch_size=micro_batch_size,
                                micro_batch_tokens=micro_batch_tokens, adapter=adapter)
                 for rank, w in enumerate(self.workers)])

    @property
    def world_size(self) -> int:
        return len(self.workers)

    def node_ids(self) -> list[str]:
        return ray.get([w.node_id.remote() for w in self.workers])

    def logprobs(self, batch: RolloutBatch | PairBatch, model: str = "policy") -> Any:
        """Per response token log-probs (RolloutBatch) or (chosen, rejected) sums (PairBatch)
        under the policy or a named frozen reference, in batch order."""
        n = len(batch)
        pairs = isinstance(batch, PairBatch)
        shards = shard_pairs(batch, self.world_size) if pairs else shard_batch(batch, self.world_size)
        parts = ray.get([w.logprobs.remote(s, model) for w, s in zip(self.workers, shards)])
        if pairs:
            return unshard([p[0] for p in parts], n), unshard([p[1] for p in parts], n)
        return unshard(parts, n)

    def train(self, batch: RolloutBatch | PairBatch, loss: ClippedPolicyLoss | PairLoss) -> dict[str, float]:
        """One optimizer step, every rank on its equal shard (zero-weight padding, nothing dropped);
        `loss` carries the normalisers of the whole batch."""
        if isinstance(batch, PairBatch):
            shards = shard_pairs(batch, self.world_size)
            return merge_step_stats(ray.get([w.train.remote(s, loss) for w, s in zip(self.workers, shards)]))
        stats = ray.get([w.train.remote(s, loss) for w, s in zip(self.workers, shard_batch(batch, self.world_size))])
        tokens = sum(s["tokens"] for s in stats) or 1.0
        merged = {k: sum(s[k] * s["tokens"] for s in stats) / tokens
                  for k in ("entropy", "clip_fraction", "kl", "ratio_mean")}
        merged.update(loss=sum(s["loss"] for s in stats), grad_norm=stats[0]["grad_norm"], lr=stats[0]["lr"],
                      tokens=sum(s["tokens"] for s in stats))
        return merged

    def snapshot_reference(self, name: str = "preference") -> None:
        ray.get([w.snapshot_reference.remote(name) for w in self.workers])

    # ---- the preference drivers' policy protocol (rl.preference.policy.LocalPolicy has it too) ----
    def reset_preference_reference(self) -> None:
        self.snapshot_reference("preference")

    def sequence_logprobs(self, batch: PairBatch, reference: bool = False) -> tuple[list[float], list[float]]:
        return self.logprobs(batch, "preference" if reference else "policy")

    def preference_step(self, batch: PairBatch, loss_cfg: PreferenceLossConfig) -> dict[str, float]:
        return self.train(batch, PairLoss(loss_cfg, float(len(batch))))

    def state_buckets(self, bucket_bytes: int) -> list[Any]:
        return ray.get([w.state_buckets.remote(bucket_bytes) for w in self.workers])[0]

    def save_hf(self, out_dir: str) -> None:
        ray.get([w.save_hf.remote(out_dir) for w in self.workers])

    def nccl_address(self) -> tuple[str, int]:
        return ray.get(self.workers[0].address.remote())

    def save_state(self, directory: str) -> None:
        ray.get([w.save_state.remote(directory) for w in self.workers])

    def load_state(self, directory: str) -> None:
        ray.get([w.load_state.remote(directory) for w in self.workers])

    def shutdown(self) -> None:
        for w in self.workers:
            ray.kill(w)


class GeneratorGroup:
    def __init__(self, model_dir: str, cfg: GeneratorConfig, placement: PlacementConfig, seed: int):
        opts = dict(num_cpus=cfg.num_cpus_per_engine, num_gpus=cfg.num_gpus_per_engine,
                    resources=placement.generator_resources or None)
        self.workers = [_GeneratorActor.options(**opts).remote(model_dir, cfg, seed=seed + i)
                        for i in range(cfg.num_engines)]
        self.kind = ray.get(self.workers[0].engine_kind.remote())

    def node_ids(self) -> list[str]:
        return ray.get([w.node_id.remote() for w in self.workers])

    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[Completion]:
        """Split prompts over the engines; completions come back grouped by prompt, in order."""
        shards = _shards(len(prompts), len(self.workers))
        parts = ray.get([w.generate.remote([prompts[i] for i in s], sampling)
                         for w, s in zip(self.workers, shards) if s])
        by_prompt: dict[int, list[Completion]] = {}
        for s, part in zip([s for s in shards if s], parts):
            for c in part:
                c.prompt_index = s[c.prompt_index]
                by_prompt.setdefault(c.prompt_index, []).append(c)
        return [c for i in range(len(prompts)) for c in by_prompt[i]]

    def update_weights(self, buckets: list[Any]) -> list[dict[str, float]]:
        return ray.get([w.update_weights.remote(buckets) for w in self.workers])

    def connect_nccl(self, policy: "PolicyGroup", tensor_parallel_size: int) -> None:
        """CUDA: one NCCL group, trainer rank 0 = rank 0, engine e's workers = 1 + e*tp ..."""
        host, port = policy.nccl_address()
        world = 1 + len(self.workers) * tensor_parallel_size
        joins = [w.init_weight_receiver.remote(host, port, 1 + e * tensor_parallel_size, world)
                 for e, w in enumerate(self.workers)]
        ray.get([p.init_weight_sender.remote(host, port, world) for p in policy.workers] + joins)

    def receive_weights_from(self, policy: "PolicyGroup") -> None:
        specs = ray.get(policy.workers[0].weight_specs.remote())
        receives = [w.receive_weights.remote(specs) for w in self.workers]
        ray.get([p.send_weights.remote() for p in policy.workers] + receives)

    def prompt_logprobs(self, sequences: list[list[int]], prompt_lens: list[int]) -> list[list[list[float]]]:
        """Every engine's answer, so parity is checked on each of them."""
        return ray.get([w.prompt_logprobs.remote(sequences, prompt_lens) for w in self.workers])

    def shutdown(self) -> None:
        ray.get([w.shutdown.remote() for w in self.workers])
        for w in self.workers:
            ray.kill(w)
