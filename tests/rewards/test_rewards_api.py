"""The plugin API: registry and name resolution, safe calls, weights, the pool, `check`."""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time

import pytest
from rewards_plugins import length_reward

from rewards import (CombinedReward, RewardComponent, RewardPool, RewardRunner,
                     RewardSample, get_reward, parse_components, registered, reward)
from rewards.check import check_reward


def sample(completion: str, sid: str = "s", spec: dict | None = None, mode: str = "off") -> RewardSample:
    return RewardSample(sid, [{"role": "user", "content": "q"}], completion,
                        spec or {"type": "math", "answer": "1"}, mode)


def test_builtins_are_registered():
    assert {"math", "format", "code", "if", "tool", "reward_model", "judge", "by_type"} <= set(registered())


def test_decorator_module_function_and_unknown_names():
    @reward("test_double_len")
    def double_len(s: RewardSample) -> float:
        return 2.0 * len(s.completion)

    assert get_reward("test_double_len").fn(sample("abc")) == 6.0
    fn = get_reward("rewards_plugins:length_reward")
    assert fn.fn is length_reward and fn.kind == "sync"
    assert get_reward("rewards_plugins:async_vowels").kind == "async"
    assert get_reward("rewards_plugins:batched_rank").kind == "batched"
    with pytest.raises(LookupError, match="unknown reward 'nope'"):
        get_reward("nope")
    with pytest.raises(LookupError, match="has no attribute 'missing'"):
        get_reward("rewards_plugins:missing")
    with pytest.raises(LookupError, match="cannot import module 'no_such_module'"):
        get_reward("no_such_module:f")


def test_sync_async_and_batched_forms_give_real_scores():
    samples = [sample("aei"), sample("xyz" * 10), sample("o")]
    sync, m = RewardRunner(get_reward("rewards_plugins:length_reward")).score(samples)
    assert [s.result.score for s in sync] == [0.03, 0.3, 0.01] and m.calls == 3
    asyn, _ = RewardRunner(get_reward("rewards_plugins:async_vowels")).score(samples)
    assert [s.result.score for s in asyn] == [3.0, 0.0, 1.0] and asyn[0].result.info == {"async": True}
    batch, _ = RewardRunner(get_reward("rewards_plugins:batched_rank")).score(samples)
    assert [s.result.score for s in batch] == [1.0, 2.0, 0.0]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_failures_score_zero_are_logged_with_the_id_and_counted():
    records = _Records()
    logging.getLogger("reforge.rewards").addHandler(records)
    samples = [sample("a", "row-1"), sample("b", "row-2")]
    none, m = RewardRunner(get_reward("rewards_plugins:returns_none")).score(samples)
    assert [s.result.score for s in none] == [0.0, 0.0] and m.failures == 2
    assert "returned NoneType" in none[0].result.info["error"]
    raised, m = RewardRunner(get_reward("rewards_plugins:raises")).score(samples)
    assert m.failures == 2 and "broken plugin on row-2" in raised[1].result.info["error"]
    logging.getLogger("reforge.rewards").removeHandler(records)
    assert any("rewards_plugins:raises raised on sample row-1" in m for m in records.messages)


def test_a_hanging_reward_times_out_without_blocking_the_others():
    runner = RewardRunner(get_reward("rewards_plugins:hangs"), timeout_s=0.3, max_workers=2)
    scored, m = runner.score([sample("a", f"h{i}") for i in range(4)])
    assert m.timeouts == 4 and all(s.result.score == 0.0 for s in scored)
    assert m.seconds < 8.0  # killed at 0.3 s, workers replaced (else 2 x 30 s)


def test_weighted_combination_from_config():
    comps = parse_components([{"name": "format", "weight": 0.5},
                              {"name": "rewards_plugins:length_reward", "weight": 2.0}])
    out = CombinedReward(comps).score([sample("no tags here", mode="off"),
                                       sample("<think>x</think>y", mode="off")])
    assert out.scores == [pytest.approx(0.5 + 2.0 * 0.12), pytest.approx(0.0 + 2.0 * 0.17)]
    assert out.details[1]["format"]["info"]["reason"] == "think tags in 'off' mode"
    assert out.metrics["format"].mean == 0.5


@pytest.mark.parametrize("config,message", [
    ([], "non-empty list"),
    ([{"name": "format", "wieght": 1}], r"rewards\[0\]: unknown key\(s\) \['wieght'\]"),
    ([{"name": "format", "weight": "high"}], r"rewards\[0\].weight: expected a number"),
    (["format", "format"], "listed twice"),
])
def test_config_errors_name_the_entry(config, message):
    with pytest.raises(ValueError, match=message):
        parse_components(config)


def test_local_pool_scores_and_reports_metrics():
    pool = RewardPool(["format", "rewards_plugins:raises"], backend="local")
    out = pool.score([sample("plain", "p1"), sample("<think>", "p2")])
    assert out.scores == [1.0, 0.0]
    assert out.metrics["rewards_plugins:raises"].failures == 2
    assert out.metrics["format"].to_dict()["mean"] == 0.5
    with pytest.raises(LookupError, match="unknown reward"):
        RewardPool(["frmat"])


def test_check_reports_type_errors_nondeterminism_and_shipping():
    good = check_reward(RewardComponent("format"))
    assert good.ok and good.shippable and not good.exceptions and good.seconds_per_call < 0.1
    bad = check_reward(RewardComponent("rewards_plugins:returns_none"))
    assert not bad.ok and len(bad.type_errors) == 8
    assert check_reward(RewardComponent("rewards_plugins:coin")).nondeterministic
    unship = check_reward(RewardComponent("rewards_plugins:unpicklable"))
    assert not unship.shippable and "lock" in unship.ship_error.lower()
    assert "ships to a Ray worker: NO" in "\n".join(unship.lines())


def test_entry_point_group_finds_an_installed_plugin(tmp_path, monkeypatch):
    """A distribution on sys.path declaring `[reforge.rewards]`, as pip would install it."""
    dist = tmp_path / "reforge_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reforge-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[reforge.rewards]\nshipped_length = rewards_plugins:length_reward\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = get_reward("shipped_length")
    assert fn.fn is length_reward and fn.fn(sample("x" * 50)) == 0.5


def test_rewards_that_sleep_forever_or_segfault_end_within_their_timeout():
    """Each call runs in a worker process that is killed at the timeout or dies on its own;
    the caller scores 0, counts it, and goes on."""
    samples = [sample("a", f"x{i}") for i in range(4)]
    before = set(mp.active_children())
    runner = RewardRunner(get_reward("rewards_plugins:sleeps_forever"), timeout_s=1.0, max_workers=2)
    try:
        started = time.monotonic()
        scored, m = runner.score(samples)
        elapsed = time.monotonic() - started
    finally:
        runner.close()
    assert m.timeouts == 4 and all(s.result.score == 0.0 for s in scored)
    assert "worker killed" in scored[0].result.info["error"]
    assert elapsed < 2 * 1.0 + 6.0, elapsed  # two rounds of 2 workers, plus worker start-up
    crash = RewardRunner(get_reward("rewards_plugins:segfaults"), timeout_s=5.0, max_workers=2)
    try:
        started = time.monotonic()
        scored, m = crash.score(samples)
        elapsed = time.monotonic() - started
    finally:
        crash.close()
    assert m.failures == 4 and "SIGSEGV" in scored[0].result.info["error"]
    assert elapsed < 5.0 + 6.0, elapsed
    assert not set(mp.active_children()) - before  # closing the runners stopped their workers


def test_a_timeout_in_a_batched_reward_zeroes_only_the_samples_that_did_not_finish():
    samples = [sample("aaa", "b0"), sample("hang here", "b1"), sample("c", "b2")]
    runner = RewardRunner(get_reward("rewards_plugins:hangs_on_marked"), timeout_s=1.0, max_workers=2)
    try:
        scored, m = runner.score(samples)
    finally:
        runner.close()
    assert [s.result.score for s in scored] == [0.03, 0.0, 0.01]
    assert m.timeouts == 1 and scored[1].timed_out and m.failures == 0


def test_a_reward_that_cannot_reach_its_worker_process_is_refused_with_the_fix():
    with pytest.raises(TypeError, match="cannot be sent to the worker process.*runs_in='caller'"):
        RewardRunner(get_reward("rewards_plugins:unpicklable"))

    @reward("test_caller_side", runs_in="caller")
    def caller_side(s: RewardSample) -> float:
        return float(os.getpid())

    scored, _ = RewardRunner(get_reward("test_caller_side")).score([sample("x")])
    assert scored[0].result.score == os.getpid()  # ran here, not in a worker process
