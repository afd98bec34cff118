"""Curriculum and dynamic sampling behaviour."""
from collections import Counter

from rl.curriculum import CurriculumConfig, PromptSampler


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
