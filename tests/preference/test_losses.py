"""Preference losses against hand computation, their limits, and the RPO-sq / RLOO identity."""
from __future__ import annotations

import math

import pytest
import torch

from rl.preference.losses import PairLogprobs, PreferenceLossConfig, bernoulli_kl, preference_loss

# one pair: policy / reference summed log-probs, token counts, explicit rewards
PC, PR, RC, RR, NC, NR = -10.0, -12.0, -11.0, -11.5, 5.0, 8.0
GC, GR = 0.9, 0.2


def _x(**kw) -> PairLogprobs:
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    base = dict(chosen=t(PC), rejected=t(PR), chosen_tokens=t(NC), rejected_tokens=t(NR), ref_chosen=t(RC),
                ref_rejected=t(RR), chosen_reward=t(GC), rejected_reward=t(GR))
    base.update(kw)
    return PairLogprobs(**base)


def _sig(z):
    return 1 / (1 + math.exp(-z))


def _bkl(p, q):  # KL(Bern(sig p) || Bern(sig q))
    return _sig(p) * math.log(_sig(p) / _sig(q)) + _sig(-p) * math.log(_sig(-p) / _sig(-q))


BETA, ETA = 0.3, 2.0
DELTA = (PC - RC) - (PR - RR)  # 1.5
A, B = BETA * DELTA, ETA * (GC - GR)


@pytest.mark.parametrize("name,expected", [
    ("dpo", -math.log(_sig(A))),
    ("ipo", (DELTA - 1 / (2 * BETA)) ** 2),
    ("rpo_sq", (A - B) ** 2),
    ("rpo_bwd_kl", _bkl(B, A)),
    ("rpo_fwd_kl", _bkl(A, B)),
    ("simpo", -math.log(_sig(BETA * (PC / NC - PR / NR) - 0.5))),
])
def test_loss_values_match_hand_computation(name, expected):
    cfg = PreferenceLossConfig(name, beta=BETA, eta=ETA, simpo_margin=0.5)
    out = preference_loss(_x(), cfg)
    assert float(out.preference) == pytest.approx(expected, rel=1e-9)
    assert float(out.loss) == pytest.approx(expected, rel=1e-9)  # no SFT term by default


def test_average_log_probs_sft_term_and_stats():
    cfg = PreferenceLossConfig("dpo", beta=BETA, average_log_probs=True, sft_weight=0.5, preference_weight=2.0)
    out = preference_loss(_x(), cfg)
    a = BETA * ((PC - RC) / NC - (PR - RR) / NR)
    assert float(out.preference) == pytest.approx(-math.log(_sig(a)), rel=1e-9)
    assert float(out.sft) == pytest.approx(-PC / NC, rel=1e-9)
    assert float(out.loss) == pytest.approx(2.0 * -math.log(_sig(a)) + 0.5 * (-PC / NC), rel=1e-9)
    stats = out.stats()
    assert stats["accuracy"] == 1.0
    assert stats["chosen_reward"] == pytest.approx(BETA * (PC - RC) / NC)
    assert stats["margin"] == pytest.approx(a)


def test_default_rewards_are_one_and_zero():
    cfg = PreferenceLossConfig("rpo_sq", beta=BETA, eta=ETA)
    out = preference_loss(_x(chosen_reward=None, rejected_reward=None), cfg)
    assert float(out.preference) == pytest.approx((A - ETA * 1.0) ** 2, rel=1e-9)


def test_stable_for_huge_gaps():
    for name in ("dpo", "rpo_bwd_kl", "rpo_fwd_kl", "simpo"):
        out = preference_loss(_x(chosen=torch.tensor([-1e4], dtype=torch.float64),
                                 chosen_reward=torch.tensor([1e4], dtype=torch.float64)),
                              PreferenceLossConfig(name, beta=1.0, eta=1.0))
        assert torch.isfinite(out.loss).all(), name
    assert float(bernoulli_kl(torch.tensor(80.0), torch.tensor(-80.0))) == pytest.approx(80.0, rel=1e-6)  # = -log σ(-80)


def test_rpo_bwd_kl_approaches_dpo_as_target_gap_grows():
    dpo = float(preference_loss(_x(), PreferenceLossConfig("dpo", beta=BETA)).preference)
    gaps = []
    for b in (2.0, 5.0, 10.0, 20.0, 40.0):
        x = _x(chosen_reward=torch.tensor([b], dtype=torch.float64), rejected_reward=torch.tensor([0.0],
                                                                                            dtype=torch.float64))
        gaps.append(abs(float(preference_loss(x, PreferenceLossConfig("rpo_bwd_kl", beta=BETA, eta=1.0)).preference)
                        - dpo))
    assert all(g1 > g2 for g1, g2 in zip(gaps, gaps[1:]))
    assert gaps[-1] < 1e-15 + 1e-12


def test_reference_needed_except_simpo():
    with pytest.raises(ValueError, match="reference"):
        preference_loss(_x(ref_chosen=None), PreferenceLossConfig("dpo"))
    preference_loss(_x(ref_chosen=None, ref_rejected=None), PreferenceLossConfig("simpo"))
    with pytest.raises(ValueError, match="key 'loss.preference_loss'"):
        PreferenceLossConfig("kto")
    with pytest.raises(ValueError, match="key 'loss.beta'"):
        PreferenceLossConfig("dpo", beta=0.0)


@pytest.mark.parametrize("override,key", [
    ("loss.preference_loss=kto", "loss.preference_loss"), ("mode=batch", "mode"), ("backend=gpu", "backend"),
    ("online.pairing=random", "online.pairing"), ("online.prompts=code", "online.prompts"),
    ("online.samples_per_prompt=1", "online.samples_per_prompt"), ("data.format=csv", "data.format"),
    ("data.on_malformed_row=ignore", "data.on_malformed_row"), ("interleave.source=file", "interleave.source"),
])
def test_config_choice_errors_name_the_key(override, key):
    from core.config import ConfigError, load_config
    from rl.preference.config import PreferenceConfig

    with pytest.raises(ConfigError, match=f"key '{key}'"):
        load_config(PreferenceConfig, None, [override])
    assert load_config(PreferenceConfig, None, ["loss.preference_loss=rpo_sq"]).loss.preference_loss == "rpo_sq"


def test_rpo_sq_gradient_at_reference_is_rloo():
    """All-pairs RPO-sq at π = π_ref: ∇ = 2βη(K−1) · ∇[−Σ_i (r_i − mean_{j≠i} r_j) log π(y_i)]
    (METHODS §3.1), checked on the parameters of a real (tiny) causal LM."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rl.preference.batch import PairBatch, sequence_logprob_sums

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=0))
    prompt = [5, 6, 7]
    responses = [[9, 10, 11], [12, 13], [14, 15, 16, 17], [18]]
    rewards = [1.0, 0.0, 0.5, 0.25]
    k, beta, eta = len(responses), 0.1, 3.0
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    batch = PairBatch([prompt] * len(pairs), [responses[i] for i, _ in pairs], [responses[j] for _, j in pairs],
                      [rewards[i] for i, _ in pairs], [rewards[j] for _, j in pairs])
    with torch.no_grad():
        ref, _ = sequence_logprob_sums(model, batch, 0)
    sums, counts = sequence_logprob_sums(model, batch, 0)
    n = len(pairs)
    t = torch.tensor
    out = preference_loss(PairLogprobs(sums[:n], sums[n:], counts[:n], counts[n:], ref[:n], ref[n:],
                                       t(batch.chosen_rewards), t(batch.rejected_rewards)),
                          PreferenceLossConfig("rpo_sq", beta=beta, eta=eta))
    g_rpo = torch.autograd.grad(out.loss.sum(), list(model.parameters()))
    single = PairBatch([prompt] * k, responses, responses, rewards, rewards)
    logp, _ = sequence_logprob_sums(model, single, 0)
    adv = t([r - (sum(rewards) - r) / (k - 1) for r in rewards])
    g_rloo = torch.autograd.grad(-(adv * logp[:k]).sum(), list(model.parameters()))
    flat = lambda gs: torch.cat([g.flatten() for g in gs])  # noqa: E731
    a, b = flat(g_rpo), flat(g_rloo)
    assert b.norm() > 1e-3
    torch.testing.assert_close(a, 2 * beta * eta * (k - 1) * b, rtol=1e-4, atol=1e-6)
