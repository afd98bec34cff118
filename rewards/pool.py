"""The reward pool the GRPO loop and evaluation call: a batch in, scores and metrics out.

In-process (tests, evaluation, one-node runs) it is a CombinedReward whose rewards run
`max_concurrency` at a time. With Ray it spreads the batch over `num_actors` actors, each
holding its own CombinedReward built from the same config (names, so nothing unpicklable
travels), at most `num_actors` chunks in flight.
"""
from __future__ import annotations

from typing import Any

from .combine import BatchScores, CombinedReward, RewardComponent, parse_components
from .metrics import RewardMetrics, merge
from .sample import RewardSample


class _RewardWorker:
    """Body of a Ray reward actor (kept a plain class so it is testable without Ray)."""

    def __init__(self, components: list[dict[str, Any]], max_concurrency: int) -> None:
        self.combined = CombinedReward([RewardComponent(**c) for c in components], max_concurrency)

    def score(self, samples: list[RewardSample]) -> BatchScores:
        return self.combined.score(samples)


class RewardPool:
    def __init__(self, config: Any, backend: str = "local", num_actors: int = 2,
                 max_concurrency: int = 4, actor_options: dict[str, Any] | None = None) -> None:
        if backend not in ("local", "ray"):
            raise ValueError(f"RewardPool backend must be 'local' or 'ray', got {backend!r}")
        self.components = parse_components(config)
        self.backend = backend
        for comp in self.components:  # fail on an unknown name here, not inside an actor
            comp.resolve()
        if backend == "local":
            self.local = CombinedReward(self.components, max_concurrency)
            self.actors: list[Any] = []
        else:
            import ray

            if not ray.is_initialized():
                raise RuntimeError("RewardPool(backend='ray') needs ray.init() first")
            actor_cls = ray.remote(_RewardWorker)
            opts = {"num_cpus": 1, **(actor_options or {})}
            specs = [c.to_dict() for c in self.components]
            self.actors = [actor_cls.options(**opts).remote(specs, max_concurrency)
                           for _ in range(num_actors)]

    def score(self, samples: list[RewardSample]) -> BatchScores:
        if not samples:
            return BatchScores([], [], {c.name: RewardMetrics() for c in self.components})
        if self.backend == "local":
            return self.local.score(samples)
        import ray

        n = len(self.actors)
        chunks = [samples[i::n] for i in range(n)]
        parts = ray.get([a.score.remote(c) for a, c in zip(self.actors, chunks) if c])
        scores = [0.0] * len(samples)
        details: list[dict[str, Any]] = [{} for _ in samples]
        for k, part in enumerate(parts):
            for j, (score, detail) in enumerate(zip(part.scores, part.details)):
                scores[k + j * n] = score
                details[k + j * n] = detail
        return BatchScores(scores, details, merge([p.metrics for p in parts]))

    def shutdown(self) -> None:
        if self.actors:
            import ray

            for actor in self.actors:
                ray.kill(actor)
            self.actors = []
