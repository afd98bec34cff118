"""Several rewards, weighted, as configured: `[{"name": "math", "weight": 1.0},
{"name": "format", "weight": 0.2, "timeout_s": 5}, {"name": "code", "options": {"mode":
"fraction"}}]`. The total is the weighted sum; each component's result stays in the info."""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

from .metrics import PoolFaults, RewardMetrics
from .registry import RewardFn, get_reward
from .runner import RewardRunner
from .sample import RewardSample


@dataclass
class RewardComponent:
    """One configured reward: a name `get_reward` resolves, its weight, timeout and options."""

    name: str
    weight: float = 1.0
    timeout_s: float = 30.0
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, obj: Any, where: str) -> "RewardComponent":
        if isinstance(obj, str):
            return cls(obj)
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected a reward name or an object, got {type(obj).__name__}")
        unknown = sorted(set(obj) - {"name", "weight", "timeout_s", "options"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: name, weight, timeout_s, options")
        if not isinstance(obj.get("name"), str):
            raise ValueError(f"{where}.name: expected a string")
        for key in ("weight", "timeout_s"):
            if key in obj and (not isinstance(obj[key], (int, float)) or isinstance(obj[key], bool)):
                raise ValueError(f"{where}.{key}: expected a number, got {obj[key]!r}")
        if obj.get("timeout_s", 1) <= 0:
            raise ValueError(f"{where}.timeout_s: must be positive")
        if not isinstance(obj.get("options", {}), dict):
            raise ValueError(f"{where}.options: expected an object")
        return cls(**obj)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolve(self) -> RewardFn:
        fn = get_reward(self.name)
        if not self.options:
            return fn
        return RewardFn(fn.name, functools.partial(fn.fn, **self.options), fn.kind, fn.runs_in)


def parse_components(config: Any) -> list[RewardComponent]:
    """A list of names/objects (or one name) from a config -> components; errors name the entry."""
    if isinstance(config, (str, dict)):
        config = [config]
    if not isinstance(config, list) or not config:
        raise ValueError("rewards: expected a non-empty list of reward names or objects")
    comps = [RewardComponent.from_config(c, f"rewards[{i}]") for i, c in enumerate(config)]
    names = [c.name for c in comps]
    if len(set(names)) != len(names):
        raise ValueError(f"rewards: a reward is listed twice in {names}")
    return comps


@dataclass
class BatchScores:
    scores: list[float]                      # weighted total per sample
    details: list[dict[str, dict[str, Any]]]  # per sample: name -> {"score", "info"}
    metrics: dict[str, RewardMetrics]
    faults: PoolFaults = field(default_factory=PoolFaults)  # reward actors lost and replaced


class CombinedReward:
    """Weighted sum of rewards; resolves every name up front so a typo fails before work."""

    def __init__(self, components: list[RewardComponent], max_workers: int = 4) -> None:
        self.components = components
        self.runners = [RewardRunner(c.resolve(), c.timeout_s, max_workers) for c in components]

    def close(self) -> None:
        for runner in self.runners:
            runner.close()

    def score(self, samples: list[RewardSample]) -> BatchScores:
        totals = [0.0] * len(samples)
        details: list[dict[str, dict[str, Any]]] = [{} for _ in samples]
        metrics: dict[str, RewardMetrics] = {}
        for comp, runner in zip(self.components, self.runners):
            scored, metrics[comp.name] = runner.score(samples)
            for i, s in enumerate(scored):
                totals[i] += comp.weight * s.result.score
                details[i][comp.name] = {"score": s.result.score, "info": s.result.info}
        return BatchScores(totals, details, metrics)
