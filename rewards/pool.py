"""The reward pool the GRPO loop and evaluation call: a batch in, scores and metrics out.

In-process (tests, evaluation, one-node runs) it is a CombinedReward whose rewards run
`max_concurrency` at a time. With Ray it spreads the batch over `num_actors` actors, each
holding its own CombinedReward built from the same config (names, so nothing unpicklable
travels), at most `num_actors` chunks in flight. A reward actor that dies (killed, OOM, a
reward that crashed it) is replaced and its chunk re-sent once; if that fails too, those
samples score 0, count as failures of every reward and as `samples_lost`. A reward failure
never stops the run.
"""
from __future__ import annotations

import logging
from typing import Any

from .combine import BatchScores, CombinedReward, RewardComponent, parse_components
from .metrics import PoolFaults, RewardMetrics, merge
from .sample import RewardSample

log = logging.getLogger("reforge.rewards")


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
            self._actor_cls = ray.remote(_RewardWorker)
            self._actor_opts = {"num_cpus": 1, **(actor_options or {})}
            self._actor_args = ([c.to_dict() for c in self.components], max_concurrency)
            self.actors = [self._new_actor() for _ in range(num_actors)]
        self.faults = PoolFaults()  # summed over every call

    def _new_actor(self) -> Any:
        return self._actor_cls.options(**self._actor_opts).remote(*self._actor_args)

    def score(self, samples: list[RewardSample]) -> BatchScores:
        if not samples:
            return BatchScores([], [], {c.name: RewardMetrics() for c in self.components})
        if self.backend == "local":
            return self.local.score(samples)
        out = self._score_ray(samples)
        self.faults.add(out.faults)
        return out

    def _score_ray(self, samples: list[RewardSample]) -> BatchScores:
        import ray

        n = len(self.actors)
        chunks = {k: list(range(k, len(samples), n)) for k in range(min(n, len(samples)))}
        pending = {self._send(k, samples, chunks[k]): (k, 0) for k in chunks}
        parts: dict[int, BatchScores] = {}
        faults = PoolFaults()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k, attempt = pending.pop(ready[0])
            try:
                parts[k] = ray.get(ready[0])
                continue
            except ray.exceptions.RayActorError as e:
                error = f"reward actor {k} died: {str(e).strip().splitlines()[0][:200]}"
                try:
                    ray.kill(self.actors[k])
                except Exception:  # noqa: BLE001 - already gone
                    pass
                self.actors[k] = self._new_actor()
                faults.actor_restarts += 1
            except ray.exceptions.RayError as e:
                error = f"reward actor {k} failed: {str(e).strip().splitlines()[0][:200]}"
            if attempt == 0:
                log.warning("%s; retrying its %d samples once", error, len(chunks[k]))
                faults.samples_retried += len(chunks[k])
                pending[self._send(k, samples, chunks[k])] = (k, 1)
            else:
                log.warning("%s again; its %d samples score 0", error, len(chunks[k]))
                faults.samples_lost += len(chunks[k])
                parts[k] = self._lost(len(chunks[k]), error)
        scores = [0.0] * len(samples)
        details: list[dict[str, Any]] = [{} for _ in samples]
        for k, part in parts.items():
            for i, score, detail in zip(chunks[k], part.scores, part.details):
                scores[i] = score
                details[i] = detail
        return BatchScores(scores, details, merge([p.metrics for p in parts.values()]), faults)

    def _send(self, k: int, samples: list[RewardSample], indices: list[int]) -> Any:
        return self.actors[k].score.remote([samples[i] for i in indices])

    def _lost(self, count: int, error: str) -> BatchScores:
        """Scores for samples no actor could score: 0, and a failure of every reward."""
        detail = {c.name: {"score": 0.0, "info": {"error": error}} for c in self.components}
        metrics = {c.name: RewardMetrics(calls=count, failures=count) for c in self.components}
        return BatchScores([0.0] * count, [dict(detail) for _ in range(count)], metrics)

    def shutdown(self) -> None:
        if self.backend == "local":
            self.local.close()
        if self.actors:
            import ray

            for actor in self.actors:
                ray.kill(actor)
            self.actors = []
