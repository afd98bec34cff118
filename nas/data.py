"""Token batches for calibration, distillation, scoring and accuracy: the synthetic math
task in reasoning-on mode, split by seed so held-out data never overlaps training."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.chat import with_system_prompt
from core.data.synth import math_rows
from core.tokenization import encode_conversation, encode_prompt

TRAIN_SEED, HELDOUT_SEED = 0, 977


@dataclass
class TokenBatch:
    input_ids: torch.Tensor  # (B, T), right-padded
    attention_mask: torch.Tensor  # (B, T) 1 on real tokens
    labels: torch.Tensor  # (B, T) next-token targets on response tokens, -100 elsewhere


def token_batch(tok, rows: list[dict]) -> TokenBatch:
    encs = [encode_conversation(tok, with_system_prompt(r["messages"], r["reasoning"])) for r in rows]
    width = max(len(e.input_ids) for e in encs)
    ids = torch.full((len(encs), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, e in enumerate(encs):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        lab = torch.tensor([t if m else -100 for t, m in zip(e.input_ids, e.loss_mask)])
        labels[i, :n - 1] = lab[1:]
    return TokenBatch(ids, mask, labels)


def math_batch(tok, n: int, seed: int, levels: tuple[int, ...] = (1, 2)) -> TokenBatch:
    return token_batch(tok, math_rows(n, seed, modes=("on",), levels=levels))


def math_prompts(tok, n: int, seed: int = HELDOUT_SEED, levels: tuple[int, ...] = (1, 2)) -> tuple[list[list[int]], list[str]]:
    """Held-out prompts (ids ending with the assistant header) and their gold answers."""
    rows = math_rows(n, seed, modes=("on",), with_response=False, levels=levels)
    prompts = [encode_prompt(tok, with_system_prompt(r["messages"], "on")) for r in rows]
    return prompts, [r["reward"]["answer"] for r in rows]
