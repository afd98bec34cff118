"""The reward pool as Ray actors: same scores as in-process, metrics merged across actors."""
from __future__ import annotations

import pytest

from rewards import RewardPool, RewardSample


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(address="local", include_dashboard=False, num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_pool_matches_the_local_pool(ray_local):
    samples = [RewardSample(f"m{i}", [{"role": "user", "content": "q"}],
                            f"<think>r</think>The answer is \\boxed{{{i + (i % 3 == 0)}}}.",
                            {"type": "math", "answer": str(i)}, "on") for i in range(9)]
    samples.append(RewardSample("c0", [{"role": "user", "content": "q"}],
                                "```python\ndef f(x):\n    return x * 2\n```",
                                {"type": "code", "tests": ["assert f(2) == 4"]}, "off"))
    config = [{"name": "by_type", "weight": 1.0}, {"name": "format", "weight": 0.5}]
    local = RewardPool(config, backend="local").score(samples)
    pool = RewardPool(config, backend="ray", num_actors=2, actor_options={"num_cpus": 0.5})
    try:
        remote = pool.score(samples)
    finally:
        pool.shutdown()
    assert remote.scores == local.scores
    assert remote.scores[:3] == [0.5, 1.5, 1.5]  # i=0 answers 1 (wrong); format passes in `on` mode
    assert remote.scores[-1] == 1.5  # the code passes; `off` mode without think tags passes format
    assert remote.metrics["by_type"].calls == 10 and remote.metrics["by_type"].failures == 0
    assert remote.details[1]["by_type"]["info"]["correct"] is True
