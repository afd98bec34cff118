"""Ray actor groups around the policy workers and the generators.

Each group hides its fan-out: a batch is sharded over the policy ranks (equal shards, so
every rank runs the same collectives); the generators are core.engines.group's engine
actors, which split prompts and return completions in request order. Weights move from
one to the other through rl.weight_transport.

Failures: a policy rank whose actor dies raises PolicyWorkerDied naming the rank (the run
cannot go on without its shard; the trainer adds the checkpoint to resume from). A dead
generator engine is started again and, before it serves, loads the policy's current
weights and passes the parity probe (`GeneratorGroup._prepare`).
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray

from core import peak_memory
from core.engines.group import EngineGroup, error_line
from core.engines.weight_group import broadcast_bucket, close_group, open_group, trim_heap
from core.training import TrainConfig, dist
from rl.batch import RolloutBatch, shard_batch, unshard
from rl.generator import GeneratorConfig
from rl.losses import ClippedPolicyLoss
from rl.policy_worker import PolicyWorker
from rl.preference.batch import PairBatch, shard_pairs
from rl.preference.losses import PairLoss, PreferenceLossConfig
from rl.preference.worker import merge_step_stats
from rl.weight_stream import Bucket, gather_bucket, plan_buckets
from rl.weight_sync import check_parity, load_engine
from rl.weight_transport import ObjectStoreTransport, Sent, WeightTransport, make_transport
from sft.config import AdapterConfig

if TYPE_CHECKING:
    from rl.config import SyncConfig  # rl.config imports PlacementConfig from here


@dataclass
class PlacementConfig:
    """Where actors go. Custom resources (e.g. {"rollout": 1}) pin roles to nodes."""

    policy_world_size: int = field(default=1, metadata={"help": (
        "policy ranks (one Ray actor each; FSDP2 / DeepSpeed shard over them)")})
    policy_num_cpus: float = field(default=1.0, metadata={"help": "Ray CPU request per policy rank"})
    policy_num_gpus: float = field(default=0.0, metadata={"help": "1 per rank on GPU clusters"})
    policy_threads: int = field(default=2, metadata={"help": (
        "torch threads inside each policy rank (Ray sets 1 per CPU otherwise)")})
    policy_resources: dict[str, float] = field(default_factory=dict, metadata={"help": (
        "custom Ray resources per policy rank, e.g. {trainer: 1} pins ranks to nodes")})
    generator_resources: dict[str, float] = field(default_factory=dict, metadata={"help": (
        "custom Ray resources per generator engine, e.g. {rollout: 1}")})


class PolicyWorkerDied(RuntimeError):
    """A policy rank's actor died (killed, OOM, node lost); the run stops here."""

    def __init__(self, rank: int, during: str, cause: str, checkpoint: str | None = None):
        self.rank, self.during, self.cause, self.checkpoint = rank, during, cause, checkpoint
        resume = (f"last checkpoint: {checkpoint}; run again with resume=auto to continue from it"
                  if checkpoint else "no checkpoint was written yet; resume=auto would start the run over")
        super().__init__(f"policy worker rank {rank} died during {during} ({cause}); the run stops: {resume}")

    def with_checkpoint(self, checkpoint: str | None) -> "PolicyWorkerDied":
        return PolicyWorkerDied(self.rank, self.during, self.cause, checkpoint)


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

    # ---- weight transport (rl.weight_transport); every rank takes part in each gather ----
    def _lora_scaling(self) -> float | None:
        return self.adapter.alpha / self.adapter.rank if self.adapter.method == "lora" else None

    def _weights_module(self):
        """The module whose state dict holds the weights (inside a DeepSpeed engine)."""
        model = self.backend.model
        if hasattr(model, "module"):
            if self.backend.cfg.zero_stage == 3:
                raise NotImplementedError("weight sync streams FSDP2 or unsharded policies; ZeRO-3 partitions "
                                          "every parameter: use train.backend=fsdp2 or train.zero_stage<=2")
            return model.module
        return model

    def weight_plan(self, bucket_bytes: int) -> list[Bucket]:
        return plan_buckets(self._weights_module(), bucket_bytes, self._lora_scaling())

    def put_weight_bucket(self, bucket: Bucket) -> list[ray.ObjectRef] | None:
        """Gather one bucket; rank 0 puts it in the object store and returns [its ref]."""
        tensors = gather_bucket(self._weights_module(), bucket, self._lora_scaling())
        ref = ray.put({k: v.cpu() for k, v in tensors.items()}) if self.rank == 0 else None
        del tensors
        trim_heap()
        return [ref] if ref is not None else None

    def open_weight_group(self, host: str, port: int, world_size: int) -> None:
        if self.rank == 0:
            self._weight_group = open_group(host, port, 0, world_size, dist.device())

    def send_weight_buckets(self, plan: list[Bucket]) -> None:
        """Gather bucket after bucket; rank 0 broadcasts each to the engines' workers."""
        for bucket in plan:
            tensors = gather_bucket(self._weights_module(), bucket, self._lora_scaling())
            if self.rank == 0:
                broadcast_bucket(self._weight_group, list(bucket.specs), dist.device(), list(tensors.values()))
            del tensors
            trim_heap()

    def close_weight_group(self) -> None:
        close_group(getattr(self, "_weight_group", None))
        self._weight_group = None

    def start_peak_memory(self) -> None:
        self._peak = peak_memory.PeakWindow()
        self._peak.start()

    def stop_peak_memory(self) -> peak_memory.Peak:
        return self._peak.stop()


class PolicyGroup:
    def __init__(self, model_dir: str, train: TrainConfig, placement: PlacementConfig, keep_reference: bool,
                 micro_batch_size: int, micro_batch_tokens: int = 0, adapter: AdapterConfig | None = None,
                 packing: str = "off"):
        world = placement.policy_world_size
        # Sharded ranks must run the same number of forwards (FSDP gathers per layer), and a
        # token cap could split their shards differently: the cap is for one rank only.
        micro_batch_tokens = micro_batch_tokens if world == 1 else 0
        opts = dict(num_cpus=placement.policy_num_cpus, num_gpus=placement.policy_num_gpus,
                    resources=placement.policy_resources or None)
        self.workers = [_PolicyActor.options(**opts).remote(threads=placement.policy_threads) for _ in range(world)]
        master, port = self._gather([self.workers[0].address.remote()], "setup")[0]
        self._gather([w.setup.remote(model_dir, train, rank=rank, world_size=world, master_addr=master,
                                     master_port=port, keep_reference=keep_reference,
                                     micro_batch_size=micro_batch_size, micro_batch_tokens=micro_batch_tokens,
                                     adapter=adapter, packing=packing)
                      for rank, w in enumerate(self.workers)], "setup")

    @property
    def world_size(self) -> int:
        return len(self.workers)

    def _gather(self, refs: list[ray.ObjectRef], during: str) -> list[Any]:
        """ray.get of one call per rank (refs[r] on rank r). A dead rank raises PolicyWorkerDied
        at once, without waiting for the ranks it left blocked in a collective."""
        rank_of = {ref: r for r, ref in enumerate(refs)}
        pending = list(refs)
        while pending:
            (ready,), pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(ready)
            except ray.exceptions.RayActorError as e:
                raise PolicyWorkerDied(rank_of[ready], during, error_line(e)) from e
        return ray.get(refs)

    def node_ids(self) -> list[str]:
        return self._gather([w.node_id.remote() for w in self.workers], "node_ids")

    def weight_plan(self, bucket_bytes: int) -> list[Bucket]:
        return self._gather([self.workers[0].weight_plan.remote(bucket_bytes)], "weight sync")[0]

    def put_weight_bucket(self, bucket: Bucket) -> list[ray.ObjectRef]:
        """Every rank gathers `bucket`; returns rank 0's [object ref] of it."""
        return self._gather([w.put_weight_bucket.remote(bucket) for w in self.workers], "weight sync")[0]


    def logprobs(self, batch: RolloutBatch | PairBatch, model: str = "policy") -> Any:
        """Per response token log-probs (RolloutBatch) or (chosen, rejected) sums (PairBatch)
        under the policy or a named frozen reference, in batch order."""
        n = len(batch)
        pairs = isinstance(batch, PairBatch)
        shards = shard_pairs(batch, self.world_size) if pairs else shard_batch(batch, self.world_size)
        parts = self._gather([w.logprobs.remote(s, model) for w, s in zip(self.workers, shards)], f"{model} logprobs")
        if pairs:
            return unshard([p[0] for p in parts], n), unshard([p[1] for p in parts], n)
        return unshard(parts, n)

    def train(self, batch: RolloutBatch | PairBatch, loss: ClippedPolicyLoss | PairLoss) -> dict[str, float]:
        """One optimizer step, every rank on its equal shard (zero-weight padding, nothing dropped);
        `loss` carries the normalisers of the whole batch."""
        if isinstance(batch, PairBatch):
            shards = shard_pairs(batch, self.world_size)
            return merge_step_stats(self._gather([w.train.remote(s, loss) for w, s in zip(self.workers, shards)],
                                                 "train"))
        stats = self._gather([w.train.remote(s, loss) for w, s in zip(self.workers, shard_batch(batch, self.world_size))],
                             "train")
        tokens = sum(s["tokens"] for s in stats) or 1.0
        merged = {k: sum(s[k] * s["tokens"] for s in stats) / tokens
                  for k in ("entropy", "clip_fraction", "kl", "ratio_mean")}
        merged.update(loss=sum(s["loss"] for s in stats), grad_norm=stats[0]["grad_norm"], lr=stats[0]["lr"],
                      tokens=sum(s["tokens"] for s in stats))
        return merged

    def snapshot_reference(self, name: str = "preference") -> None:
        self._gather([w.snapshot_reference.remote(name) for w in self.workers], "snapshot_reference")

    # ---- the preference drivers' policy protocol (rl.preference.policy.LocalPolicy has it too) ----
    def reset_preference_reference(self) -> None:
        self.snapshot_reference("preference")

    def sequence_logprobs(self, batch: PairBatch, reference: bool = False) -> tuple[list[float], list[float]]:
        return self.logprobs(batch, "preference" if reference else "policy")

    def preference_step(self, batch: PairBatch, loss_cfg: PreferenceLossConfig) -> dict[str, float]:
        return self.train(batch, PairLoss(loss_cfg, float(len(batch))))

    def save_hf(self, out_dir: str) -> None:
        self._gather([w.save_hf.remote(out_dir) for w in self.workers], "save_hf")

    def save_state(self, directory: str) -> None:
        self._gather([w.save_state.remote(directory) for w in self.workers], "save_state")

    def load_state(self, directory: str) -> None:
        self._gather([w.load_state.remote(directory) for w in self.workers], "load_state")

    def shutdown(self) -> None:
        for w in self.workers:
            ray.kill(w)


class GeneratorGroup(EngineGroup):
    """The RL generators, and the transport that brings them the policy's weights."""

    def __init__(self, model_dir: str, cfg: GeneratorConfig, placement: PlacementConfig, seed: int):
        super().__init__(model_dir, cfg, num_engines=cfg.num_engines, seed=seed, num_cpus=cfg.num_cpus_per_engine,
                         num_gpus=cfg.num_gpus_per_engine, resources=placement.generator_resources)
        self.transport: WeightTransport = ObjectStoreTransport()
        from rl.config import SyncConfig

        self.policy: PolicyGroup | None = None
        self.sync = SyncConfig()
        # The run's parity probe once the trainer has one (rl.weight_sync.sync_weights records
        # it); until then a restarted engine is checked on a fixed token sequence.
        self.probe = RolloutBatch([list(range(3, 35))], [4])
        self._rejoin = False  # an engine was restarted: the collective group must be formed again

    def connect(self, policy: PolicyGroup, transport: str, sync: SyncConfig | None = None) -> None:
        """Use `transport` (object_store | collective) for syncs from `policy` from now on;
        `sync` (bucket size, parity check) also applies to a restarted engine's load."""
        self.transport.close()
        self.policy, self.sync, self._rejoin = policy, sync or self.sync, False
        self.transport = make_transport(transport, policy, self)

    def send_weights(self, policy: PolicyGroup, bucket_bytes: int) -> Sent:
        """One sync through the transport. An engine restarted since the last one joins a new
        collective group first; an engine that dies during an object-store sync is restarted
        (it loads the current weights) and the sync is sent again."""
        if self._rejoin:
            self.connect(policy, self.transport.name, self.sync)
        try:
            return self.transport.send(policy, self, bucket_bytes)
        except ray.exceptions.RayActorError as e:
            dead = self.dead_engines() if self.transport.name == "object_store" else []
            if not dead:
                raise
            for i in dead:
                self.restart(i, self.workers[i], f"during a weight sync: {error_line(e)}")
            return self.transport.send(policy, self, bucket_bytes)

    def dead_engines(self, wait_s: float = 5.0) -> list[int]:
        """Engines whose actor is gone: a call to a dead actor fails at once, while a busy live
        one's is simply not answered within `wait_s`."""
        refs = [w.kind.remote() for w in self.workers]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=wait_s)
        dead = []
        for i, ref in enumerate(refs):
            if ref in ready:
                try:
                    ray.get(ref)
                except ray.exceptions.RayActorError:
                    dead.append(i)
        return dead

    def _prepare(self, i: int) -> None:
        """A restarted engine loads the policy's current weights (object store, whatever the
        transport: a collective group cannot take a new member, so it is formed again at the
        next sync) and must pass the parity probe before it serves."""
        if self.policy is None:  # not connected: it serves the weights it started from
            return
        load_engine(self.policy, self, i, int(self.sync.bucket_mb * 2**20))
        if self.sync.parity_check:
            check_parity(self.policy, self, self.probe, self.sync.parity_tolerance, engines=[i])
        self._rejoin = self.transport.name == "collective"

    def shutdown(self) -> None:
        self.transport.close()
        super().shutdown()
