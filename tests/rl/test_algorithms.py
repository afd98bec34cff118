"""GRPO maths against values computed by hand."""
import math

import pytest
import torch

from rl.advantages import group_advantages, zero_variance_groups
from rl.losses import PolicyLossConfig, aggregate, k3_kl, policy_loss


def test_std_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    # mean 0.5, unbiased std sqrt(1/3)
    expected = 0.5 / math.sqrt(1 / 3)
    assert torch.allclose(group_advantages(r, "std", eps=0.0), torch.tensor([[expected, -expected, -expected, expected]]))


def test_no_std_and_leave_one_out_by_hand():
    r = torch.tensor([[3.0, 1.0, 2.0]])
    assert torch.allclose(group_advantages(r, "no_std"), torch.tensor([[1.0, -1.0, 0.0]]))
    # loo: r_i - mean(others): 3-1.5, 1-2.5, 2-2
    assert torch.allclose(group_advantages(r, "loo"), torch.tensor([[1.5, -1.5, 0.0]]))


def test_zero_variance_groups_flagged():
    r = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    assert zero_variance_groups(r).tolist() == [True, False, True]
    assert torch.all(group_advantages(r, "std")[0] == 0)


def test_k3_kl_by_hand():
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    # r = ref/pi = 0.5 -> 0.5 - log 0.5 - 1
    assert torch.allclose(k3_kl(logp, ref), torch.tensor([0.5 - math.log(0.5) - 1]))
    assert k3_kl(ref, ref).item() == 0.0


def test_clipped_surrogate_by_hand():
    # one sample, two tokens; ratios exp(0.5)=1.6487 (clipped at 1.28 for A>0) and exp(-0.5)=0.6065
    logp = torch.tensor([[0.5, -0.5]])
    old = torch.zeros(1, 2)
    mask = torch.ones(1, 2)
    cfg = PolicyLossConfig(clip_low=0.2, clip_high=0.28, kl_coef=0.0, aggregation="token_mean")
    loss, stats = policy_loss(logp, old, torch.tensor([2.0]), mask, cfg)
    # A>0: min(r*A, clip(r)*A): token1 min(3.297, 2.56)=2.56; token2 min(1.213, 0.8*2=1.6)=1.213
    expected = -(1.28 * 2 + math.exp(-0.5) * 2) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["clip_fraction"] == pytest.approx(0.5)
    loss_neg, _ = policy_loss(logp, old, torch.tensor([-1.0]), mask, cfg)
    # A<0: min(-r, -clip(r)) = -max(r, clip(r)): token1 -1.6487; token2 -max(0.6065, 0.8) = -0.8
    assert loss_neg.item() == pytest.approx((math.exp(0.5) + 0.8) / 2, rel=1e-6)


def test_kl_term_added_with_coefficient():
    logp, old, ref = torch.tensor([[-1.0]]), torch.tensor([[-1.0]]), torch.tensor([[-2.0]])
    cfg = PolicyLossConfig(kl_coef=0.1)
    loss, stats = policy_loss(logp, old, torch.tensor([0.0]), torch.ones(1, 1), cfg, ref_logp=ref)
    k3 = math.exp(-1.0) + 1.0 - 1.0
    assert loss.item() == pytest.approx(0.1 * k3, rel=1e-6) and stats["kl"] == pytest.approx(k3, rel=1e-6)


def test_token_mean_vs_seq_mean_by_hand():
    per_token = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    assert aggregate(per_token, mask, "token_mean").item() == pytest.approx(8 / 5)
    assert aggregate(per_token, mask, "seq_mean").item() == pytest.approx((1 + 4) / 2)
    # a micro-batch of a larger global batch divides by the global token count
    assert aggregate(per_token, mask, "token_mean", token_normalizer=10.0).item() == pytest.approx(0.8)


def test_truncated_importance_weights_cap():
    logp = torch.zeros(1, 1, requires_grad=True)
    old = torch.zeros(1, 1)
    gen = torch.tensor([[-5.0]])  # generator thought the token far less likely: weight e^5 capped at 2
    cfg = PolicyLossConfig(tis_cap=2.0)
    loss, _ = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 1), cfg, generator_logp=gen)
    assert loss.item() == pytest.approx(-2.0)


def test_micro_batches_group_similar_lengths_under_the_caps():
    from rl.batch import micro_batches

    lengths = [50, 10, 40, 12, 11, 45]
    # Shortest first, at most 2 sequences: the three short ones never share with the long ones.
    assert micro_batches(lengths, max_sequences=2) == [[1, 4], [3, 2], [5, 0]]
    # Token cap 40: 10, 11, 12 fit (3 x 12 = 36); 40 alone (2 x 40 > 40); 45 and 50 alone.
    assert micro_batches(lengths, max_sequences=8, max_tokens=40) == [[1, 4, 3], [2], [5], [0]]
    # Every index exactly once, whatever the caps.
    chunks = micro_batches(lengths, max_sequences=3, max_tokens=100)
    assert sorted(i for c in chunks for i in c) == list(range(6))
    assert all(len(c) * max(lengths[i] for i in c) <= 100 for c in chunks)
