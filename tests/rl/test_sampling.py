"""Curriculum and dynamic sampling behaviour."""
from collections import Counter

import pytest

from core.config import ConfigError, load_config
from core.data.schema import Row
from rl.config import GRPOConfig
from rl.curriculum import CurriculumConfig, PromptSampler
from rl.prefilter import prefilter


def _mean_rate(batch, rates):
    return sum(rates[i] for i in batch) / len(batch)


def test_gaussian_curriculum_moves_from_easy_to_hard():
    rates = [(i % 6) / 8 for i in range(1200)]
    s = PromptSampler(rates, batch_size=32, total_batches=10, cfg=CurriculumConfig("gaussian", sigma=0.1))
    means = [_mean_rate(s.next_batch(), rates) for _ in range(10)]
    assert means[0] > 0.5 and means[-1] < 0.15
    assert all(a >= b - 0.05 for a, b in zip(means, means[1:]))  # monotone up to noise


def test_batches_sample_without_replacement_and_fill_when_bins_run_dry():
    rates = [0.0] * 5 + [0.625] * 100
    s = PromptSampler(rates, batch_size=20, total_batches=5, cfg=CurriculumConfig("gaussian", sigma=0.05))
    seen = []
    for _ in range(5):
        b = s.next_batch()
        assert len(b) == 20 and len(set(b)) == 20
        seen += b
    assert len(set(seen)) == 100  # one epoch of 105 prompts, no repeats
    s.total_batches = 5
    late = Counter(rates[i] for i in seen[-20:])
    assert late[0.625] >= 15  # hard bin exhausted, slots filled from the fullest bin


def test_sampler_state_round_trip_continues_identically():
    rates = [(i % 4) / 8 for i in range(200)]
    a = PromptSampler(rates, 16, 8)
    for _ in range(3):
        a.next_batch()
    b = PromptSampler(rates, 16, 8)
    b.load_state_dict(a.state_dict())
    assert [a.next_batch() for _ in range(4)] == [b.next_batch() for _ in range(4)]


def test_uniform_sampler_draws_each_prompt_once_per_epoch():
    rates = [0.1] * 64
    s = PromptSampler(rates, 16, 4, CurriculumConfig("uniform"))
    assert sorted(i for _ in range(4) for i in s.next_batch()) == list(range(64))


def _rows(n):
    return [Row(f"p{i}", [{"role": "user", "content": str(i)}], "on", {"kind": "math", "answer": "0"}) for i in range(n)]


def test_prefilter_keeps_pass_rates_between_the_floor_and_the_ceiling():
    rates = [0.0, 0.125, 0.5, 0.75, 1.0, 0.0]
    kept = prefilter(_rows(6), rates, max_pass_rate=0.75, min_pass_rate=0.1)
    assert [r.id for r in kept.rows] == ["p1", "p2"] and kept.pass_rates == [0.125, 0.5] and kept.dropped == 4
    assert [r.id for r in prefilter(_rows(6), rates, max_pass_rate=0.75).rows] == ["p0", "p1", "p2", "p5"]
    with pytest.raises(ValueError, match="dropped every prompt"):
        prefilter(_rows(6), rates, max_pass_rate=0.75, min_pass_rate=0.6)


def test_a_pass_rate_window_that_keeps_nothing_is_a_config_error_naming_the_keys():
    with pytest.raises(ConfigError, match="filter.min_pass_rate"):
        load_config(GRPOConfig, None, ["filter.min_pass_rate=0.8"])


def test_a_filter_reward_outside_the_reward_functions_is_a_config_error():
    with pytest.raises(ConfigError, match="filter.reward"):
        load_config(GRPOConfig, None, ["filter.reward=math_stpes"])
    assert load_config(GRPOConfig, None, ["filter.reward=format"]).filter.reward == "format"
