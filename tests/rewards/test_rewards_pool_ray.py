"""The reward pool as Ray actors: same scores as in-process, metrics merged across actors;
a reward actor killed mid-step is replaced and its samples retried; samples whose retry
fails score 0 and are counted; hung and crashing rewards end within their timeout."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rewards import RewardPool, RewardSample


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    here = Path(__file__).parent  # so reward actors import the test plugins by name
    ray.init(address="local", include_dashboard=False, num_cpus=2, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{here}:{here.parents[1]}"}})
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


def _samples(n: int, spec: dict | None = None) -> list[RewardSample]:
    return [RewardSample(f"m{i}", [{"role": "user", "content": "q"}], "x" * (i + 1),
                         {"type": "math", "answer": "1", **(spec or {})}, "off") for i in range(n)]


def test_a_reward_actor_killed_mid_step_is_replaced_and_its_samples_retried(ray_local, tmp_path):
    started = tmp_path / "started"
    started.mkdir()
    samples = _samples(8, {"started_dir": str(started), "pause_s": 0.5})
    pool = RewardPool([{"name": "rewards_plugins:slow_length", "timeout_s": 20}], backend="ray",
                      num_actors=2, max_concurrency=1, actor_options={"num_cpus": 0.5})
    victim = pool.actors[0]
    result: dict[str, object] = {}
    scoring = threading.Thread(target=lambda: result.update(out=pool.score(samples)))
    try:
        scoring.start()
        deadline = time.monotonic() + 120
        while not any(p.name.split("-")[0] in ("m0", "m2", "m4", "m6") for p in started.iterdir()):
            assert time.monotonic() < deadline and scoring.is_alive(), "actor 0 never started scoring"
            time.sleep(0.05)
        ray_local.kill(victim)  # mid-step: actor 0 holds samples 0, 2, 4, 6
        scoring.join(timeout=180)
        assert not scoring.is_alive(), "scoring did not finish after the actor died"
    finally:
        scoring.join(timeout=180)
        pool.shutdown()
    out = result["out"]
    assert out.scores == [(i + 1) / 100 for i in range(8)]  # no sample missing or zeroed
    assert out.faults.to_dict() == {"actor_restarts": 1, "samples_retried": 4, "samples_lost": 0}
    assert pool.faults.actor_restarts == 1
    assert out.metrics["rewards_plugins:slow_length"].failures == 0


def test_samples_whose_retry_dies_too_score_zero_and_are_counted(ray_local):
    samples = _samples(4)
    samples[0].reward_spec["kill"] = True  # actor 0 holds samples 0 and 2, and dies on 0
    pool = RewardPool(["rewards_plugins:kills_its_process"], backend="ray", num_actors=2,
                      actor_options={"num_cpus": 0.5})
    try:
        out = pool.score(samples)
        again = pool.score(_samples(4))  # the replacement actors serve the next step
    finally:
        pool.shutdown()
    assert out.scores == [0.0, 1.0, 0.0, 1.0]
    assert out.faults.to_dict() == {"actor_restarts": 2, "samples_retried": 2, "samples_lost": 2}
    assert out.metrics["rewards_plugins:kills_its_process"].failures == 2
    assert "reward actor 0 died" in out.details[0]["rewards_plugins:kills_its_process"]["info"]["error"]
    assert again.scores == [1.0] * 4 and again.faults.samples_lost == 0


def test_hung_and_segfaulting_third_party_rewards_end_within_the_timeout(ray_local):
    config = [{"name": "rewards_plugins:sleeps_forever", "timeout_s": 1.0},
              {"name": "rewards_plugins:segfaults", "timeout_s": 1.0},
              {"name": "format", "weight": 0.5}]
    pool = RewardPool(config, backend="ray", num_actors=2, max_concurrency=2,
                      actor_options={"num_cpus": 0.5})
    try:
        ray_local.get([a.score.remote([]) for a in pool.actors])  # actors up before the clock
        started = time.monotonic()
        out = pool.score(_samples(4))
        elapsed = time.monotonic() - started
    finally:
        pool.shutdown()
    assert out.scores == [0.5] * 4  # only `format` scored; the others scored 0, counted
    assert out.metrics["rewards_plugins:sleeps_forever"].timeouts == 4
    assert out.metrics["rewards_plugins:segfaults"].failures == 4
    assert out.faults.actor_restarts == 0  # the actors themselves never died
    # per actor: 2 hung calls in parallel (1 s), 2 crashes; plus spawning reward workers
    assert elapsed < 1.0 + 10.0, elapsed
