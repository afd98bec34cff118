"""Per-token log-probs (and entropy) of response tokens without materialising [B, L, V] logits.

A causal LM's last step is `logits = lm_head(hidden)`: at 4k response tokens and a 128k
vocabulary that is 2 GiB of fp32 per sequence, and `log_softmax` plus entropy triple it.
For one forward the output head is swapped for `_ResponseHead`, which receives the hidden
states, keeps only the positions that predict response tokens and computes logits for
`chunk_tokens` of them at a time, in fp32. Under autograd each chunk is checkpointed (its
logits are recomputed in backward), so only hidden states are kept, never logits. The
head is called inside the model's own forward, so sharded wrappers (FSDP2 unshards the
root's parameters around it) and DeepSpeed's per-module hooks see an ordinary call.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from rl.batch import ModelInputs

DEFAULT_CHUNK_TOKENS = 1024


def _head_owner(model: nn.Module) -> nn.Module:
    """The module holding the output projection as `lm_head` (inside any FSDP/peft/DeepSpeed wrapper)."""
    for m in model.modules():
        if "lm_head" in m._modules:  # its own child: wrappers (peft) forward attribute reads to it
            return m
    raise TypeError(f"{type(model).__name__} has no `lm_head` output projection")


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters (or, sharded, their local shards) live."""
    return next(model.parameters()).device


def _chunk_logprobs(head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = head(hidden).float()  # [C, V]: the only vocabulary-sized tensor, one chunk at a time
    lse = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, targets[:, None])[:, 0] - lse
    with torch.no_grad():  # entropy is a statistic: no gradient, nothing kept for backward
        entropy = lse - (torch.softmax(logits, dim=-1) * logits).sum(-1)
    return logp, entropy


class _ResponseHead(nn.Module):
    """Stands in for `lm_head` during one forward; returns [B, R, 2] = (log-prob, entropy)."""

    def __init__(self, head: nn.Module, positions: torch.Tensor, targets: torch.Tensor, chunk_tokens: int):
        super().__init__()
        self.head = head
        self.positions, self.targets, self.chunk_tokens = positions, targets, chunk_tokens

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        b, r = self.targets.shape
        h = hidden.gather(1, self.positions[:, :, None].expand(b, r, hidden.shape[-1])).reshape(b * r, -1)
        t = self.targets.reshape(-1)
        logps, entropies = [], []
        for s in range(0, b * r, self.chunk_tokens):
            args = (self.head, h[s:s + self.chunk_tokens], t[s:s + self.chunk_tokens])
            if torch.is_grad_enabled():
                logp, entropy = checkpoint(_chunk_logprobs, *args, use_reentrant=False)
            else:
                logp, entropy = _chunk_logprobs(*args)
            logps.append(logp)
            entropies.append(entropy)
        return torch.stack([torch.cat(logps), torch.cat(entropies)], dim=-1).reshape(b, r, 2)


def response_logprobs(model: nn.Module, x: ModelInputs, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-prob, entropy), each [B, R] fp32, of every response token in `x` (on the model's device).

    The log-probs carry gradients when autograd is on; the entropy never does.
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    owner = _head_owner(model)
    original = owner.lm_head
    owner.lm_head = _ResponseHead(original, x.response_positions(), x.targets, chunk_tokens)
    try:
        out = model(input_ids=x.input_ids, attention_mask=x.attention_mask, use_cache=False).logits
    finally:
        owner.lm_head = original
    return out[..., 0], out[..., 1].detach()
