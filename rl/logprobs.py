"""Per-token log-probs (and entropy) of response tokens without materialising [B, L, V] logits.

A causal LM's last step is `logits = lm_head(hidden)`: at 4k response tokens and a 128k
vocabulary that is 2 GiB of fp32 per sequence, and `log_softmax` plus entropy triple it.
For one forward the output head is swapped for `_ResponseHead`, which receives the hidden
states, keeps only the positions that predict response tokens and computes logits for
`chunk_tokens` of them at a time, in fp32. Under autograd each chunk is checkpointed (its
logits are recomputed in backward), so only hidden states are kept, never logits. The
head is called inside the model's own forward, so sharded wrappers (FSDP2 unshards the
root's parameters around it) and DeepSpeed's per-module hooks see an ordinary call.

Inputs may be padded or packed (`rl.batch.model_inputs`): packed rows hold several
sequences with restarting position ids and attention kept inside each sequence, so no
FLOPs go to padding; the head finds each response token's hidden state by its flat index.
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


def native_packing(model: nn.Module) -> bool:
    """Does `model` build its attention masks with transformers' masking utilities (which
    read packed sequences from `position_ids`)? True for the causal LMs transformers ships
    (Llama, Qwen2, Mistral, ...); False for remote or local modelling code, which gets an
    explicit 4D block mask instead."""
    return any(c.__module__.startswith("transformers.models.") for c in type(_head_owner(model)).__mro__)


def check_packing(model: nn.Module) -> str:
    """How packed micro-batches reach `model` (`rl.batch.model_inputs`'s `packing`): "rows"
    (several rows, each no longer than the longest sequence) or "one_row" (flash attention:
    transformers' varlen path takes packed sequences in a single row). Models with
    state-space (Mamba) layers cannot pack: their recurrent state would flow from one
    sequence into the next."""
    if any("mamba" in type(m).__name__.lower() for m in model.modules()):
        raise ValueError(f"{type(_head_owner(model)).__name__} has Mamba layers: packed sequences would share "
                         "recurrent state; set packing to auto or off (algorithm.packing / packing)")
    impl = str(getattr(_head_owner(model).config, "_attn_implementation", "") or "")
    return "one_row" if impl.startswith("flash") and native_packing(model) else "rows"


PACKING = ("auto", "on", "off")


def packing_layout(model: nn.Module, packing: str) -> str:
    """The `rl.batch.model_inputs` layout for a `packing` setting: "off" -> "" (padded);
    "on" -> `check_packing` (an error for a model that cannot pack); "auto" -> packed where
    the model can, padded for models with Mamba layers."""
    if packing not in PACKING:
        raise ValueError(f"packing must be one of {list(PACKING)}, got {packing!r}")
    if packing == "off":
        return ""
    try:
        return check_packing(model)
    except ValueError:
        if packing == "on":
            raise
        return ""


class _ResponseHead(nn.Module):
    """Stands in for `lm_head` during one forward; returns [B, R, 2] = (log-prob, entropy)."""

    def __init__(self, head: nn.Module, flat_positions: torch.Tensor, targets: torch.Tensor, chunk_tokens: int):
        super().__init__()
        self.head = head
        self.flat_positions, self.targets, self.chunk_tokens = flat_positions, targets, chunk_tokens

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        b, r = self.targets.shape
        h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, self.flat_positions.reshape(-1))
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
    owner.lm_head = _ResponseHead(original, x.flat_positions, x.targets, chunk_tokens)
    try:
        out = model(**x.model_kwargs(x.packed and native_packing(model)), use_cache=False).logits
    finally:
        owner.lm_head = original
    return out[..., 0], out[..., 1].detach()
