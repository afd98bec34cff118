"""The rollout batch that travels from the driver to the policy workers, and its tensors."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class RolloutBatch:
    """One sample per entry: prompt + completion ids and what the loss needs per sample."""

    sequences: list[list[int]]
    prompt_lens: list[int]
    advantages: list[float] = field(default_factory=list)
    loss_masks: list[list[int]] = field(default_factory=list)  # per response token (0 = overlong / ignored)
    generator_logprobs: list[list[float]] = field(default_factory=list)
    old_logprobs: list[list[float]] = field(default_factory=list)
    ref_logprobs: list[list[float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sequences)

    def response_lens(self) -> list[int]:
        return [len(s) - p for s, p in zip(self.sequences, self.prompt_lens)]

    def select(self, idx: list[int]) -> "RolloutBatch":
        def pick(xs):
            return [xs[i] for i in idx] if xs else []

        return RolloutBatch(pick(self.sequences), pick(self.prompt_lens), pick(self.advantages),
                            pick(self.loss_masks), pick(self.generator_logprobs), pick(self.old_logprobs),
                            pick(self.ref_logprobs))


def micro_batches(lengths: list[int], max_sequences: int, max_tokens: int = 0) -> list[list[int]]:
    """Split a batch into micro-batches of similar lengths, to cut padding.

    Sequences are taken shortest first; a micro-batch closes at `max_sequences` or when its
    padded size (count x longest) would pass `max_tokens` (0 = no token cap). Rollouts end
    at varied lengths, and right-padding every micro-batch to its longest member wastes the
    forward and backward FLOPs of the gap; grouping by length keeps that gap small. A single
    sequence longer than `max_tokens` still gets a micro-batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    chunks: list[list[int]] = []
    current: list[int] = []
    for i in order:
        padded = (len(current) + 1) * lengths[i]  # sorted: i is the longest so far
        if current and (len(current) == max_sequences or (max_tokens and padded > max_tokens)):
            chunks.append(current)
            current = []
        current.append(i)
    if current:
        chunks.append(current)
    return chunks


def shard_batch(batch: RolloutBatch, world: int) -> list[RolloutBatch]:
    """Equal shards, one per rank (sharded ranks must run the same collectives).

    A batch that does not divide by `world` is padded with copies of its last sample whose
    loss mask is all zero: they run through the model like any row but add nothing to the
    loss, the gradients or the token counts, so no sample is dropped and none counts twice.
    Rank r gets rows r, r + world, ... (the padding lands at the end of the last shards).
    """
    n = len(batch)
    if n == 0:
        raise ValueError("cannot shard an empty batch")
    pad = (-n) % world
    padded = batch.select(list(range(n)) + [n - 1] * pad)
    masks = padded.loss_masks or [[1] * r for r in padded.response_lens()]
    padded.loss_masks = masks[:n] + [[0] * len(m) for m in masks[n:]]
    return [padded.select(list(range(r, n + pad, world))) for r in range(world)]


def unshard(parts: list[list], n: int) -> list:
    """Per-row results of `shard_batch`'s shards back in batch order, padding dropped."""
    world = len(parts)
    out: list = [None] * sum(len(p) for p in parts)
    for r, part in enumerate(parts):
        out[r::world] = part
    return out[:n]


def pad_right(rows: list[list[float]], width: int, value: float = 0.0, dtype=torch.float32) -> torch.Tensor:
    out = torch.full((len(rows), width), value, dtype=dtype)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=dtype)
    return out


@dataclass
class ModelInputs:
    input_ids: torch.Tensor  # [B, L] right-padded
    attention_mask: torch.Tensor  # [B, L]
    targets: torch.Tensor  # [B, R] response token ids, right-padded
    response_mask: torch.Tensor  # [B, R] 1 on real response tokens
    prompt_lens: list[int]

    def to(self, device: torch.device | str) -> "ModelInputs":
        """The same inputs on `device` (the policy worker moves them once, at its boundary)."""
        return ModelInputs(self.input_ids.to(device), self.attention_mask.to(device), self.targets.to(device),
                           self.response_mask.to(device), self.prompt_lens)

    def response_positions(self) -> torch.Tensor:
        """[B, R]: the position whose logits predict each response token.

        Position t's logits predict token t+1, so response token j (at p + j) is predicted at
        p + j - 1 (clamped into the row for padding past its end).
        """
        width, rwidth = self.input_ids.shape[1], self.targets.shape[1]
        offsets = torch.arange(rwidth, device=self.targets.device)
        return torch.stack([(p - 1 + offsets).clamp(max=width - 1) for p in self.prompt_lens])


def model_inputs(sequences: list[list[int]], prompt_lens: list[int], pad_id: int) -> ModelInputs:
    width = max(len(s) for s in sequences)
    rlens = [len(s) - p for s, p in zip(sequences, prompt_lens)]
    rwidth = max(max(rlens), 1)
    ids = pad_right(sequences, width, pad_id, torch.long)
    attn = pad_right([[1] * len(s) for s in sequences], width, 0, torch.long)
    targets = pad_right([s[p:] for s, p in zip(sequences, prompt_lens)], rwidth, pad_id, torch.long)
    rmask = pad_right([[1.0] * n for n in rlens], rwidth, 0.0)
    return ModelInputs(ids, attn, targets, rmask, list(prompt_lens))

