"""Engines in Ray actors behind one Generator: RL's generators and evaluation's multi-engine runs.

Prompts are split over the engines and completions come back grouped by prompt, in
request order; requests carry their own seed, so the split does not change the samples.
Weights arrive either as object-store buckets (`update_weights`) or over a weight group
(`open_weight_group` / `receive_weight_buckets`); rl.weight_transport drives both.
"""
from __future__ import annotations

from typing import Any

import ray

from core import peak_memory
from core.engines.base import Completion, SamplingSettings
from core.engines.factory import EngineSettings, make_engine
from core.engines.weight_group import trim_heap


class EngineWorker:
    """One engine, hosted in a Ray actor by EngineGroup."""

    def __init__(self, model_dir: str, settings: EngineSettings, seed: int = 0):
        self.engine = make_engine(model_dir, settings, seed=seed)

    def kind(self) -> str:
        from core.engines.hf_engine import HFEngine

        return "hf" if isinstance(self.engine, HFEngine) else "vllm"

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[Completion]:
        return self.engine.generate(prompts, sampling)

    def prompt_logprobs(self, sequences: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        return self.engine.prompt_logprobs(sequences, prompt_lens)

    def update_weights(self, buckets: list[Any]) -> int:
        """Load object-store buckets (refs, or plain dicts) one after another; returns bytes."""
        received = 0
        for b in buckets:
            part = ray.get(b) if isinstance(b, ray.ObjectRef) else b
            received += sum(t.numel() * t.element_size() for t in part.values())
            self.engine.update_weights(part)
            del part
            trim_heap()
        return received

    def group_ranks(self) -> int:
        return self.engine.group_ranks

    def open_weight_group(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        self.engine.open_weight_group(host, port, rank_offset, world_size)

    def receive_weight_buckets(self, buckets: list) -> int:
        return self.engine.receive_weight_buckets(buckets)

    def close_weight_group(self) -> None:
        self.engine.close_weight_group()

    def start_peak_memory(self) -> None:
        self._peak = peak_memory.PeakWindow()
        self._peak.start()

    def stop_peak_memory(self) -> peak_memory.Peak:
        return self._peak.stop()

    def sleep(self, level: int = 1) -> None:
        self.engine.sleep(level)

    def wake(self) -> None:
        self.engine.wake()

    def shutdown(self) -> None:
        """Stop the engine core inside the actor: killing it first leaks /dev/shm segments."""
        if hasattr(self.engine, "shutdown"):
            self.engine.shutdown()


def _round_robin(n: int, parts: int) -> list[list[int]]:
    return [list(range(r, n, parts)) for r in range(parts)]


class EngineGroup:
    """`num_engines` EngineWorker actors; `kind` is the engine they run (vllm | hf)."""

    def __init__(self, model_dir: str, settings: EngineSettings, num_engines: int = 1, seed: int = 0,
                 num_cpus: float = 1.0, num_gpus: float = 0.0, resources: dict[str, float] | None = None):
        actor = ray.remote(EngineWorker).options(num_cpus=num_cpus, num_gpus=num_gpus, resources=resources or None)
        self.workers = [actor.remote(model_dir, settings, seed=seed + i) for i in range(num_engines)]
        self.kind = ray.get(self.workers[0].kind.remote())  # raises the engine's own error (e.g. no vLLM)

    def node_ids(self) -> list[str]:
        return ray.get([w.node_id.remote() for w in self.workers])

    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[Completion]:
        """Split prompts over the engines; completions come back grouped by prompt, in order."""
        shards = [s for s in _round_robin(len(prompts), len(self.workers)) if s]
        parts = ray.get([w.generate.remote([prompts[i] for i in s], sampling) for w, s in zip(self.workers, shards)])
        by_prompt: dict[int, list[Completion]] = {}
        for s, part in zip(shards, parts):
            for c in part:
                c.prompt_index = s[c.prompt_index]
                by_prompt.setdefault(c.prompt_index, []).append(c)
        return [c for i in range(len(prompts)) for c in by_prompt[i]]

    def prompt_logprobs(self, sequences: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        """Split over the engines (the Generator call)."""
        shards = [s for s in _round_robin(len(sequences), len(self.workers)) if s]
        parts = ray.get([w.prompt_logprobs.remote([sequences[i] for i in s], [prompt_lens[i] for i in s])
                         for w, s in zip(self.workers, shards)])
        out: list[list[float]] = [[] for _ in sequences]
        for s, part in zip(shards, parts):
            for i, lp in zip(s, part):
                out[i] = lp
        return out

    def prompt_logprobs_each(self, sequences: list[list[int]], prompt_lens: list[int]) -> list[list[list[float]]]:
        """Every engine's answer for all sequences, so parity is checked on each of them."""
        return ray.get([w.prompt_logprobs.remote(sequences, prompt_lens) for w in self.workers])

    def update_weights(self, buckets: list[Any]) -> list[int]:
        """Every engine loads `buckets` (object refs or dicts); returns the bytes each received."""
        return ray.get([w.update_weights.remote(buckets) for w in self.workers])

    def sleep(self, level: int = 1) -> None:
        ray.get([w.sleep.remote(level) for w in self.workers])

    def wake(self) -> None:
        ray.get([w.wake.remote() for w in self.workers])

    def shutdown(self) -> None:
        ray.get([w.shutdown.remote() for w in self.workers])
        for w in self.workers:
            ray.kill(w)
