"""An offline DPO step on checkpoints users bring, from TRL-style message-list pairs: the
prompt ids are the template's generation prompt and each response is the template's
assistant turn, end-of-turn token included."""
from __future__ import annotations

import json

import pytest
import torch
from chat_formats import FORMATS, build_checkpoint

from core.tokenization import end_of_turn_ids, place_toggle
from core.training import TrainConfig
from rl.preference.data import encode_pairs, load_pairs
from rl.preference.losses import PreferenceLossConfig
from rl.preference.policy import LocalPolicy

SYSTEM = {"role": "system", "content": "detailed thinking off"}


def _pairs(path):
    rows = []
    for a, b in [(2, 3), (4, 4), (7, 1), (5, 6)]:
        prompt = [SYSTEM, {"role": "user", "content": f"What is {a} + {b}?"}]
        rows.append({"chosen": [*prompt, {"role": "assistant", "content": f"The answer is \\boxed{{{a + b}}}."}],
                     "rejected": [*prompt, {"role": "assistant", "content": f"The answer is \\boxed{{{a + b + 1}}}."}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


@pytest.mark.parametrize("name", ["chatml", "mistral", "llama3", "nemotron-nas"])
def test_offline_dpo_step_on_the_templates_tokens(name, tmp_path):
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    model = str(build_checkpoint(FORMATS[name], tmp_path / "model"))
    tok = AutoTokenizer.from_pretrained(model)
    rows = _pairs(tmp_path / "pairs.jsonl")
    pairs = load_pairs(tmp_path / "pairs.jsonl").rows
    batch, too_long = encode_pairs(tok, pairs, max_len=256)
    assert not too_long and len(batch.prompts) == 4
    for row, prompt, chosen in zip(rows, batch.prompts, batch.chosen):
        full = list(tok.apply_chat_template(place_toggle(tok, row["chosen"]), tokenize=True,
                                            return_dict=True)["input_ids"])
        head = list(tok.apply_chat_template(place_toggle(tok, row["chosen"][:-1]), tokenize=True,
                                            add_generation_prompt=True, return_dict=True)["input_ids"])
        assert prompt == head and full[:len(prompt) + len(chosen)] == prompt + chosen
        assert chosen[-1:] == end_of_turn_ids(tok)
    policy = LocalPolicy(model, TrainConfig(lr=1e-2, warmup_steps=0, schedule="constant", grad_clip=0.0),
                         micro_batch_size=4)
    policy.reset_preference_reference()
    batch.ref_chosen, batch.ref_rejected = policy.sequence_logprobs(batch, reference=True)
    stats = policy.preference_step(batch, PreferenceLossConfig("dpo", beta=0.5))
    assert stats["pairs"] == 4 and stats["grad_norm"] > 0
    chosen_after, rejected_after = policy.sequence_logprobs(batch)
    margin_before = sum(batch.ref_chosen) - sum(batch.ref_rejected)
    assert sum(chosen_after) - sum(rejected_after) > margin_before  # one step moves towards the chosen
