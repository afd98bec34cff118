"""Offline preference training on the policy worker in this process (core.training backend)."""
from __future__ import annotations

import pytest
import torch

from core.metrics import LoggingConfig, MetricsWriter, read_metrics
from core.training import TrainConfig
from rl.preference.data import encode_pairs
from rl.preference.losses import PreferenceLossConfig
from rl.preference.offline import train_offline
from rl.preference.policy import LocalPolicy, heldout_accuracy
from rl.preference.synthetic import if_pairs


@pytest.fixture(scope="module")
def pairs(tiny_tokenizer):
    batch, too_long = encode_pairs(tiny_tokenizer, if_pairs(16, 7), max_len=256)
    assert not too_long
    return batch


def _policy(model_dir, micro, lr=3e-3):
    torch.set_num_threads(1)
    return LocalPolicy(model_dir, TrainConfig(lr=lr, warmup_steps=0, schedule="constant", grad_clip=0.0),
                       micro_batch_size=micro)


def test_step_statistics_and_micro_batch_invariance(tiny_model_dir, pairs):
    cfg = PreferenceLossConfig("rpo_bwd_kl", beta=0.5, eta=2.0, sft_weight=0.1)
    batch = pairs.select(list(range(6)))
    updated = []
    for micro in (6, 2):
        policy = _policy(tiny_model_dir, micro)
        policy.reset_preference_reference()
        batch.ref_chosen, batch.ref_rejected = policy.sequence_logprobs(batch, reference=True)
        c, r = policy.sequence_logprobs(batch)
        assert c == batch.ref_chosen and r == batch.ref_rejected  # reference = policy right after a reset
        stats = policy.preference_step(batch, cfg)
        # at π = π_ref: a = 0, so rpo_bwd_kl = KL(Bern(σ(2)) ‖ Bern(1/2)); plus 0.1 x mean(-log π(chosen))
        b = torch.tensor(2.0)
        kl = torch.sigmoid(b) * torch.log(2 * torch.sigmoid(b)) + torch.sigmoid(-b) * torch.log(2 * torch.sigmoid(-b))
        assert stats["preference_loss"] == pytest.approx(float(kl), rel=1e-5)
        assert stats["sft_loss"] == pytest.approx(-sum(c) / len(c), rel=1e-5)
        assert stats["pairs"] == 6 and stats["accuracy"] == 0.0 and stats["grad_norm"] > 0
        updated.append(policy.sequence_logprobs(batch)[0])
    torch.testing.assert_close(torch.tensor(updated[0]), torch.tensor(updated[1]), rtol=1e-4, atol=1e-4)


def test_checkpoint_resume_keeps_reference_and_batch_order(tiny_model_dir, pairs, tmp_path):
    """3 steps in one go == 2 steps, a checkpoint, then a fresh process state resuming for 1 more;
    the resumed run takes the reference log-probs from the checkpoint, not from its (trained) policy."""
    from core.checkpointer import Checkpointer

    cfg = PreferenceLossConfig("dpo", beta=0.5)
    small = pairs.select(list(range(6)))

    def run(steps, ckpt=None, every=0, resume=None):
        policy = _policy(tiny_model_dir, micro=6)
        train = small.select(list(range(len(small))))
        metrics = MetricsWriter(tmp_path / f"m{every}{bool(resume)}", LoggingConfig(tensorboard=False))
        out = train_offline(policy, train, small, cfg, steps=steps, batch_size=2, eval_every=0, metrics=metrics,
                            seed=3, checkpoint_dir=ckpt, checkpoint_every=every, resume_from=resume)
        metrics.close()
        return out, policy.sequence_logprobs(small)[0], train

    full, want, full_train = run(3)
    run(3, tmp_path / "ck", every=2)  # checkpoints at step 2 only (never at the last step)
    ckpt = Checkpointer(tmp_path / "ck").latest()
    assert ckpt is not None and ckpt.name == "step_2"
    resumed, got, train = run(3, resume=ckpt)
    assert resumed["resumed_from_step"] == 2 and resumed["pref_accuracy_before"] == full["pref_accuracy_before"]
    assert train.ref_chosen == pytest.approx(full_train.ref_chosen)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # ~70 s on the loaded 2-core machine
def test_offline_dpo_lifts_pair_accuracy(tiny_model_dir, pairs, tmp_path):
    policy = _policy(tiny_model_dir, micro=16)
    before = heldout_accuracy(policy, pairs)["pref_accuracy"]
    metrics = MetricsWriter(tmp_path, LoggingConfig(tensorboard=False))
    summary = train_offline(policy, pairs, pairs, PreferenceLossConfig("dpo", beta=0.5), steps=12, batch_size=16,
                            eval_every=6, metrics=metrics)
    metrics.close()
    assert summary["pref_accuracy_before"] == before and before <= 0.75
    assert summary["pref_accuracy_after"] >= 0.9
    history = read_metrics(tmp_path / "metrics.jsonl")
    losses = [r["pref/loss"] for r in history if "pref/loss" in r]
    assert len(losses) == 12 and losses[-1] < losses[0]
    assert history[1]["pref/margin"] == pytest.approx(0.0, abs=1e-5)  # first step: policy = reference
