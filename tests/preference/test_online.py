"""Online pairing from scored samples; the Ray runs (online RPO, GRPO + RPO interleaved) are slow."""
from __future__ import annotations

import json

import pytest

from core.engines.base import Completion
from core.data.schema import Row
from rl.preference.config import OnlineConfig
from rl.preference.losses import PreferenceLossConfig
from rl.preference.online import pairs_from_groups
from rl.rollout import Group


def _group(rewards):
    comps = [Completion(prompt_ids=[1, 2], token_ids=[10 + i], logprobs=[-0.1], text=str(i), finish_reason="stop")
             for i in range(len(rewards))]
    return Group(Row("r", [{"role": "user", "content": "q"}], "on", {"type": "math", "answer": "1"}), comps,
                 list(rewards), [0.0] * len(rewards), {})


def test_all_pairs_skip_ties_and_cap_by_gap():
    g = _group([1.0, 0.0, 0.5, 0.0])
    b = pairs_from_groups([g], OnlineConfig(pairing="all_pairs"))
    got = sorted((c[0], r[0]) for c, r in zip(b.chosen, b.rejected))
    assert got == [(10, 11), (10, 12), (10, 13), (12, 11), (12, 13)]  # 0.0 vs 0.0 is no preference
    assert all(c > r for c, r in zip(b.chosen_rewards, b.rejected_rewards))
    capped = pairs_from_groups([g], OnlineConfig(pairing="all_pairs", max_pairs_per_prompt=2))
    assert [(c[0], r[0]) for c, r in zip(capped.chosen, capped.rejected)] == [(10, 11), (10, 13)]
    assert capped.prompts == [[1, 2], [1, 2]]


def test_best_vs_worst_and_flat_groups():
    b = pairs_from_groups([_group([0.2, 0.9, 0.1]), _group([0.5, 0.5])], OnlineConfig(pairing="best_vs_worst"))
    assert len(b) == 1 and (b.chosen[0], b.rejected[0]) == ([11], [12])
    assert (b.chosen_rewards, b.rejected_rewards) == ([0.9], [0.1])
    with pytest.raises(ValueError, match="pairing"):
        pairs_from_groups([], OnlineConfig(pairing="random"))


def _run(tmp_path, config, *overrides):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(root / "recipes" / "super_rpo.py"), f"config={root / config}",
                          f"run_dir={tmp_path / 'run'}", "logging.tensorboard=false", *overrides],
                         capture_output=True, text=True, timeout=1500, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == str(tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return summary, records


@pytest.mark.slow
def test_online_rpo_recipe(tmp_path, tiny_model_dir):
    summary, records = _run(tmp_path, "recipes/configs/super_rpo_online_tiny.yaml", f"model={tiny_model_dir}",
                            "online.iterations=2", "online.steps_per_iteration=2", "online.prompts_per_step=4",
                            "online.eval_prompts=4",
                            "online.max_tokens=24", "data.synthetic_test_per_kind=4",
                            # a random-init model's text meets some IF constraints by chance: pairs exist
                            "online.prompts=if", "reward.functions={by_type: 1.0}", "reward.accuracy_reward=by_type")
    for key in ("pref_accuracy_before", "pref_accuracy_after", "reward_mean_first", "reward_mean_last"):
        assert 0.0 <= summary[key] <= 1.2, key
    assert len(summary["reward_mean_by_iteration"]) == 3
    assert sum(1 for r in records if "pref/loss" in r) >= 1
    assert all(r.get("sync_max_logprob_diff", 0.0) < 1e-3 for r in records)


@pytest.mark.slow
def test_interleaved_grpo_and_rpo_share_one_metrics_log(tmp_path, tiny_model_dir):
    summary, records = _run(tmp_path, "recipes/configs/super_rpo_interleaved_tiny.yaml", f"model={tiny_model_dir}",
                            "grpo.steps=2", "grpo.checkpoint_every=2", "interleave.every_grpo_steps=1",
                            "interleave.preference_steps=1", "grpo.rollout.prompts_per_step=4",
                            "grpo.rollout.max_tokens=24", "grpo.eval.max_tokens=24", "grpo.data.synthetic_test_prompts=4",
                            "data.synthetic_math=8", "data.synthetic_if=8", "data.synthetic_tool=8",
                            "data.synthetic_test_per_kind=4", "batch_size=8")
    both = [r for r in records if "reward_mean" in r and "pref/loss" in r]
    assert [r["step"] for r in both] == [1, 2]
    assert all(r["pref/pairs"] == 8 for r in both) and summary["preference_blocks"] == 2
    assert 0.0 <= summary["pref_accuracy_after"] <= 1.0 and "accuracy_after" in summary


class _StubPolicy:
    """Counts reference resets and preference steps; no model."""

    def __init__(self):
        self.events = []

    def reset_preference_reference(self):
        self.events.append("reset")

    def sequence_logprobs(self, batch, reference=False):
        return [0.0] * len(batch), [0.0] * len(batch)

    def preference_step(self, batch, loss_cfg):
        self.events.append("step")
        return {"loss": 0.0, "accuracy": 0.0}


@pytest.mark.parametrize("reset, expected", [
    ("iteration", ["reset", "step", "step", "reset", "step", "step"]),
    ("step", ["reset", "step", "reset", "step", "reset", "step", "reset", "step"]),
])
def test_online_reference_reset_schedule_and_paired_gain(monkeypatch, tmp_path, reset, expected):
    """The reference is reset per iteration (LN-Super) or before every step (RLOO); the reward
    change is measured per eval prompt: evals give per-prompt means [0.2, 0.5] then [0.4, 0.6],
    so the gain is mean(0.2, 0.1) = 0.15 with SE std(0.2, 0.1)/sqrt(2) = 0.05."""
    from types import SimpleNamespace

    import rl.preference.online as online
    from core.metrics import LoggingConfig, MetricsWriter
    from rl.preference.losses import PreferenceLossConfig

    evals = iter([[0.0, 0.4, 0.5, 0.5], [0.2, 0.6, 0.5, 0.7], [0.4, 0.4, 0.6, 0.6]])

    def fake_generate_and_score(generators, scorer, tokenizer, rows, sampling, accuracy_reward):
        if sampling.n == 2:  # evaluation: two prompts x two samples
            r = next(evals)
            return [_group(r[:2]), _group(r[2:])], {}
        return [_group([1.0, 0.0, 0.5])], {"generate": 0.0, "reward": 0.0}

    monkeypatch.setattr(online, "generate_and_score", fake_generate_and_score)
    monkeypatch.setattr(online, "sync_weights", lambda *a, **k: SimpleNamespace(seconds=0.0, max_logprob_diff=None))
    cfg = OnlineConfig(iterations=2, steps_per_iteration=2, eval_samples=2, samples_per_prompt=3, reset_reference=reset)
    policy = _StubPolicy()
    loop = online.OnlineRPO(policy, None, None, None, PreferenceLossConfig("rpo_sq"), cfg, "math",
                            SimpleNamespace(parity_check=False, bucket_mb=1, parity_tolerance=0.1))
    rows = [Row("p", [{"role": "user", "content": "q"}], "on", {"type": "math", "answer": "1"})]
    metrics = MetricsWriter(tmp_path, LoggingConfig(tensorboard=False))
    summary = loop.run(rows, rows, metrics)
    metrics.close()
    assert policy.events == expected
    assert summary["reward_mean_by_iteration"] == pytest.approx([0.35, 0.5, 0.5])
    assert summary["reward_gain"] == pytest.approx(0.15)
    assert summary["reward_gain_se"] == pytest.approx(0.05)
    assert summary["eval_prompt_rewards_first"] == pytest.approx([0.2, 0.5])
    assert summary["eval_prompt_rewards_last"] == pytest.approx([0.4, 0.6])


@pytest.mark.parametrize("loss", [
    PreferenceLossConfig("rpo_sq", beta=0.1, eta=3.0),
    PreferenceLossConfig("rpo_bwd_kl", beta=0.5, eta=2.0, average_log_probs=True, sft_weight=0.1),
])
def test_dedup_forwards_each_sample_once_with_the_same_update(tiny_model_dir, loss):
    """All pairs among K samples repeat each sample in up to 2(K-1) pairs; the deduplicated step
    (each distinct sequence forwarded once, weighted by dL/d(its log-prob)) must give the same
    log-probs, loss statistics and parameter update as the per-pair step, on a real model."""
    import torch

    from core.training import TrainConfig
    from rl.preference.batch import sequence_logprob_sums, unique_sequences
    from rl.preference.policy import LocalPolicy
    from rl.preference.worker import dedup_pays, preference_train_step

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    groups = []
    for p in range(3):  # 3 prompts x K=5 samples of different lengths, rewards with ties
        prompt = torch.randint(5, 200, (4 + p,), generator=gen).tolist()
        comps = [Completion(prompt_ids=prompt, token_ids=torch.randint(5, 200, (3 + i,), generator=gen).tolist(),
                            logprobs=[], text="", finish_reason="stop") for i in range(5)]
        rewards = [[1.0, 0.0, 0.2, 0.0, 1.2], [0.0, 0.0, 1.0, 0.2, 0.2], [0.5, 0.5, 0.5, 0.5, 0.5]][p]
        groups.append(Group(Row(f"r{p}", [{"role": "user", "content": "q"}], "on", {}), comps, rewards,
                            [0.0] * 5, {}))
    batch = pairs_from_groups(groups, OnlineConfig(pairing="all_pairs"))
    seqs, _, ci, ri = unique_sequences(batch)
    assert len(batch) == 17 and len(seqs) == 10  # the flat third group gives no pairs and no sequences
    assert [len(s) for s in seqs] == sorted(len(s) for s in seqs)
    assert all(seqs[c] == p + x for c, p, x in zip(ci, batch.prompts, batch.chosen))
    assert dedup_pays(batch, len(seqs))

    # eps = 1: AdamW's update is a smooth function of the gradient (not ~lr x its sign)
    train = TrainConfig(lr=0.1, eps=1.0, warmup_steps=1, schedule="constant", grad_clip=0.0)
    updates, stats = [], []
    for dedup in (False, True):
        worker = LocalPolicy(tiny_model_dir, train, micro_batch_size=4).worker
        worker.snapshot_reference("preference")
        batch.ref_chosen, batch.ref_rejected = worker.logprobs(batch, model="preference")
        with torch.no_grad():
            naive, _ = sequence_logprob_sums(worker.backend.model, batch, worker.pad_id)
        assert batch.ref_chosen + batch.ref_rejected == pytest.approx(naive.tolist(), abs=1e-4)
        # one shared per-pair step first, so that pi != pi_ref and the margins are not ~0
        preference_train_step(worker.backend, batch, loss, worker.pad_id, 4, float(len(batch)), dedup=False)
        before = [p.detach().clone() for p in worker.backend.model.parameters()]
        stats.append(preference_train_step(worker.backend, batch, loss, worker.pad_id, 4, float(len(batch)),
                                           dedup=dedup))
        updates.append(torch.cat([(p.detach() - b).flatten()
                                  for p, b in zip(worker.backend.model.parameters(), before)]))
    assert stats[1]["sequences"] == 10 and "sequences" not in stats[0]
    for key in ("loss", "preference_loss", "sft_loss", "accuracy", "margin"):
        assert stats[1][key] == pytest.approx(stats[0][key], rel=1e-4, abs=1e-5), key
    assert stats[1]["grad_norm"] == pytest.approx(stats[0]["grad_norm"], rel=1e-4)
    assert updates[0].abs().max() > 1e-4  # the step moved the weights
    assert abs(stats[0]["margin"]) > 1e-3
    torch.testing.assert_close(updates[1], updates[0], rtol=1e-3, atol=1e-6)


def test_online_levels_pick_the_math_prompts_for_training_and_eval():
    from rl.preference.config import PreferenceConfig
    from rl.preference.pipeline import online_rows

    cfg = PreferenceConfig(mode="online", online=OnlineConfig(levels=[1, 2]))
    rows = online_rows(cfg, 40, 20_000)
    assert len(rows) == 40 and {r.meta["difficulty"] for r in rows} == {1, 2}
    assert all(r.reward["type"] == "math" and r.reasoning == "on" for r in rows)
    every = online_rows(PreferenceConfig(mode="online"), 40, 20_000)
    assert {r.meta["difficulty"] for r in every} == {1, 2, 3, 4}
    cfg.online.prompts = "mix"
    math_ids = [r.id for r in online_rows(cfg, 30, 7) if r.id.startswith("math-pair")]
    assert len(math_ids) == 10 and {i.rsplit("-", 1)[1] for i in math_ids} == {"L1", "L2"}
    with pytest.raises(ValueError, match="online.levels"):
        OnlineConfig(levels=[0, 5])
    with pytest.raises(ValueError, match="online.levels"):
        OnlineConfig(levels=[])


def test_oversample_trains_on_the_first_varied_groups():
    from rl.preference.online import prompts_to_draw, training_groups

    assert prompts_to_draw(OnlineConfig(prompts_per_step=16)) == 16
    assert prompts_to_draw(OnlineConfig(prompts_per_step=16, oversample=1.5)) == 24
    assert prompts_to_draw(OnlineConfig(prompts_per_step=3, oversample=1.5)) == 5
    groups = [_group([1.0, 1.0]), _group([0.0, 1.0]), _group([0.2, 0.2]), _group([1.2, 0.0]), _group([0.0, 0.2])]
    kept = training_groups(groups, OnlineConfig(prompts_per_step=2, oversample=2.0))
    assert [g.rewards for g in kept] == [[0.0, 1.0], [1.2, 0.0]]
    assert training_groups(groups, OnlineConfig(prompts_per_step=2)) == groups  # off: every group
    b = pairs_from_groups(kept, OnlineConfig())
    assert (b.chosen_rewards, b.rejected_rewards) == ([1.0, 1.2], [0.0, 0.0])
    with pytest.raises(ValueError, match="online.oversample"):
        OnlineConfig(oversample=0.5)
