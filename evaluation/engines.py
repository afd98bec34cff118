"""The generator an evaluation uses: one in-process engine, or vLLM engines in Ray actors.

In-process is right for one machine (start-up in seconds, no copies). For large runs
`num_engines > 1` starts that many Ray actors, each holding a vLLM engine, and splits every
request list between them; requests carry their own seed, so the split does not change
the samples.
"""
from __future__ import annotations

from core.engines.base import Completion, SamplingSettings
from evaluation.config import EvalConfig


def _local_engine(cfg: EvalConfig):
    if cfg.engine == "hf":
        from core.engines.hf_engine import HFEngine

        return HFEngine(cfg.model)
    from core.engines.vllm_engine import VLLMEngine, VLLMSettings

    return VLLMEngine(cfg.model, VLLMSettings(max_model_len=cfg.max_model_len, kv_cache_gib=cfg.kv_cache_gib,
                                              seed=cfg.seed))


class RayEngines:
    """`num` engine actors behind the same generate / prompt_logprobs calls as one engine."""

    def __init__(self, cfg: EvalConfig, num: int):
        import ray

        if not ray.is_initialized():
            ray.init(include_dashboard=False)
        actor = ray.remote(num_cpus=1)(_EngineActor)
        self.actors = [actor.remote(cfg) for _ in range(num)]

    def _split(self, n: int) -> list[tuple[int, int]]:
        size = max(1, -(-n // len(self.actors)))
        return [(a, min(a + size, n)) for a in range(0, n, size)]

    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[Completion]:
        import ray

        parts = self._split(len(prompts))
        refs = [actor.generate.remote(prompts[a:b], sampling) for actor, (a, b) in zip(self.actors, parts)]
        out = []
        for (a, _), completions in zip(parts, ray.get(refs)):
            for c in completions:
                c.prompt_index += a
                out.append(c)
        return out

    def prompt_logprobs(self, sequences: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        import ray

        parts = self._split(len(sequences))
        refs = [actor.prompt_logprobs.remote(sequences[a:b], prompt_lens[a:b])
                for actor, (a, b) in zip(self.actors, parts)]
        return [lp for part in ray.get(refs) for lp in part]

    def shutdown(self) -> None:
        import ray

        ray.get([a.shutdown.remote() for a in self.actors])
        for a in self.actors:
            ray.kill(a)


class _EngineActor:
    def __init__(self, cfg: EvalConfig):
        self.engine = _local_engine(cfg)

    def generate(self, prompts, sampling):
        return self.engine.generate(prompts, sampling)

    def prompt_logprobs(self, sequences, prompt_lens):
        return self.engine.prompt_logprobs(sequences, prompt_lens)

    def shutdown(self) -> None:
        """Stop the engine core inside the actor: killing it first leaks /dev/shm segments."""
        if hasattr(self.engine, "shutdown"):
            self.engine.shutdown()


def make_engine(cfg: EvalConfig):
    return RayEngines(cfg, cfg.num_engines) if cfg.num_engines > 1 else _local_engine(cfg)
