"""The GRPO loop's Scorer over the rewards package's pool (names + weights from config)."""
from __future__ import annotations

from typing import Any

from core.data.schema import Row
from rl.config import RewardConfig
from rl.scoring import Scores


def reward_spec(cfg: RewardConfig) -> list[dict[str, Any]]:
    """The rewards package's component list; resolves every name so a typo fails before any
    actor starts."""
    from rewards import parse_components

    if cfg.accuracy_reward not in cfg.functions:
        raise ValueError(f"reward.accuracy_reward={cfg.accuracy_reward!r} is not one of reward.functions "
                         f"{sorted(cfg.functions)}")
    spec = [{"name": name, "weight": float(w), "timeout_s": cfg.timeout_s} for name, w in cfg.functions.items()]
    for comp in parse_components(spec):
        comp.resolve()
    return spec


class PoolScorer:
    def __init__(self, cfg: RewardConfig):
        from rewards import RewardPool

        options = {"num_cpus": 0} if cfg.backend == "ray" else None
        self.pool = RewardPool(reward_spec(cfg), backend=cfg.backend, num_actors=cfg.num_actors,
                               max_concurrency=cfg.num_workers, actor_options=options)
        self.names = list(cfg.functions)

    def score(self, rows: list[Row], completions: list[str], ids: list[str]) -> Scores:
        from rewards import RewardSample

        samples = [RewardSample(i, r.prompt_messages, c, r.reward, r.reasoning) for r, c, i in zip(rows, completions, ids)]
        out = self.pool.score(samples)
        per_function = {n: [d[n]["score"] for d in out.details] for n in self.names}
        failures = {n: m.failures + m.timeouts for n, m in out.metrics.items()}
        return Scores(list(out.scores), per_function, failures, out.faults.to_dict())

    def close(self) -> None:
        self.pool.shutdown()


def build_scorer(cfg: RewardConfig) -> PoolScorer:
    return PoolScorer(cfg)
