"""A local HF sequence-classification reward model (e.g. a Nemotron-style RM checkpoint).

Batched: one forward pass scores a list of samples. The model is loaded once per path and
process. The score is the first logit of the conversation (prompt + completion), rendered
with the tokenizer's chat template when it has one.
"""
from __future__ import annotations

import threading
from typing import Any

from ..registry import reward
from ..sample import RewardResult, RewardSample

_models: dict[str, Any] = {}
_lock = threading.Lock()


def _load(path: str) -> tuple[Any, Any]:
    with _lock:
        if path not in _models:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(path)
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token or tok.unk_token
            model = AutoModelForSequenceClassification.from_pretrained(path).eval()
            if model.config.pad_token_id is None:
                model.config.pad_token_id = tok.pad_token_id
            _models[path] = (tok, model)
        return _models[path]


def render(tok: Any, sample: RewardSample) -> str:
    messages = list(sample.prompt_messages) + [{"role": "assistant", "content": sample.completion}]
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(messages, tokenize=False)
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


@reward("reward_model", batched=True, runs_in="caller")  # one model per process, not per worker
def reward_model_reward(samples: list[RewardSample], model_path: str = "",
                        max_length: int = 1024) -> list[RewardResult]:
    if not model_path:
        raise ValueError("reward_model needs options.model_path (a local HF checkpoint directory)")
    import torch

    tok, model = _load(model_path)
    texts = [render(tok, s) for s in samples]
    batch = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    with torch.no_grad():
        logits = model(**batch).logits
    return [RewardResult(float(row[0]), {"logits": [float(x) for x in row]}) for row in logits]
