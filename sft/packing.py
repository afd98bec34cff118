"""Sequence packing with per-document isolation.

Conversations are concatenated into rows of `pack_len` tokens. Inside a row positions
restart at every document and attention is block-diagonal causal (a 4D additive mask that
SDPA and eager attention both take), so each document is computed exactly as if it were
alone: the packed loss equals the unpacked loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.chat import with_system_prompt
from core.tokenization import EncodedConversation, encode_conversation

IGNORE = -100


def encode_rows(tok, rows: list[dict]) -> list[EncodedConversation]:
    """Token ids and response-only masks; the row's reasoning mode becomes the system prompt."""
    return [encode_conversation(tok, with_system_prompt(r["messages"], r.get("reasoning", "on")))
            for r in rows]


def pack(lengths: list[int], pack_len: int) -> list[list[int]]:
    """Next-fit packing in the given order (keeps the data mix's order; ~5% padding here).
    A document longer than pack_len is an error, not a silent truncation."""
    bins: list[list[int]] = []
    used = pack_len
    for i, n in enumerate(lengths):
        if n > pack_len:
            raise ValueError(f"document {i} has {n} tokens > pack_len {pack_len}")
        if used + n > pack_len:
            bins.append([])
            used = 0
        bins[-1].append(i)
        used += n
    return bins


@dataclass
class PackedRow:
    input_ids: list[int]
    labels: list[int]  # next-token target at each position, IGNORE where no loss
    position_ids: list[int]
    doc_ids: list[int]  # document index within the row; padding is -1


def build_row(docs: list[EncodedConversation], pack_len: int, pad_id: int) -> PackedRow:
    ids, labels, pos, seg = [], [], [], []
    for d, doc in enumerate(docs):
        n = len(doc.input_ids)
        ids += doc.input_ids
        # the target of token t is token t+1 of the same document, if it is a response token
        labels += [doc.input_ids[t + 1] if doc.loss_mask[t + 1] else IGNORE for t in range(n - 1)] + [IGNORE]
        pos += list(range(n))
        seg += [d] * n
    pad = pack_len - len(ids)
    return PackedRow(ids + [pad_id] * pad, labels + [IGNORE] * pad, pos + list(range(pad)), seg + [-1] * pad)


# Models with recurrent (Mamba / SSM) layers: the block-diagonal mask isolates documents in
# attention only; a recurrent state would carry one document into the next.
RECURRENT_MODEL_TYPES = ("nemotron_h", "falcon_h1", "mamba", "mamba2", "bamba", "jamba", "zamba", "zamba2",
                         "granitemoehybrid", "lfm2")


def one_document_per_row(config) -> bool:
    return getattr(config, "model_type", "") in RECURRENT_MODEL_TYPES


def pack_documents(docs: list[EncodedConversation], pack_len: int, pad_id: int,
                   one_per_row: bool = False) -> list[PackedRow]:
    """Packed rows; `one_per_row` gives every document its own right-padded row (hybrids)."""
    lengths = [len(d.input_ids) for d in docs]
    bins = [[i] for i in range(len(docs))] if one_per_row else pack(lengths, pack_len)
    if one_per_row and max(lengths, default=0) > pack_len:
        raise ValueError(f"document {lengths.index(max(lengths))} has {max(lengths)} tokens > pack_len {pack_len}")
    return [build_row([docs[i] for i in b], pack_len, pad_id) for b in bins]


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, L]
    labels: torch.Tensor
    position_ids: torch.Tensor
    doc_ids: torch.Tensor

    @property
    def num_loss_tokens(self) -> int:
        return int((self.labels != IGNORE).sum())

    def attention_mask(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[B, 1, L, L] additive mask: 0 where query i may see key j (same document, j <= i)."""
        same = self.doc_ids[:, :, None] == self.doc_ids[:, None, :]
        causal = torch.ones(same.shape[-2:], dtype=torch.bool, device=same.device).tril()
        allowed = (same & causal)[:, None]
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(dtype).min)

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(*(t.to(device) for t in (self.input_ids, self.labels, self.position_ids, self.doc_ids)))


def collate(rows: list[PackedRow]) -> Batch:
    return Batch(*(torch.tensor([getattr(r, f) for r in rows], dtype=torch.long)
                   for f in ("input_ids", "labels", "position_ids", "doc_ids")))
