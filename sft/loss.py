"""Response-only, token-level cross-entropy.

The loss of a batch is a *sum* over response tokens; the trainer divides by the number of
response tokens in the whole global batch, so long and short responses weigh per token
(the Llama-Nemotron convention) and accumulation / data parallelism do not change it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sft.packing import IGNORE, Batch


def token_ce_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of -log p(label) over positions whose label is not IGNORE (fp32 softmax)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def forward_batch(model, batch: Batch, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Logits of a packed batch with document isolation."""
    out = model(input_ids=batch.input_ids, position_ids=batch.position_ids,
                attention_mask=batch.attention_mask(dtype), use_cache=False)
    return out.logits


def batch_loss_sum(model, batch: Batch, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return token_ce_sum(forward_batch(model, batch, dtype), batch.labels)
