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


def model_inputs(sequences: list[list[int]], prompt_lens: list[int], pad_id: int) -> ModelInputs:
    width = max(len(s) for s in sequences)
    rlens = [len(s) - p for s, p in zip(sequences, prompt_lens)]
    rwidth = max(max(rlens), 1)
    ids = pad_right(sequences, width, pad_id, torch.long)
    attn = pad_right([[1] * len(s) for s in sequences], width, 0, torch.long)
    targets = pad_right([s[p:] for s, p in zip(sequences, prompt_lens)], rwidth, pad_id, torch.long)
    rmask = pad_right([[1.0] * n for n in rlens], rwidth, 0.0)
    return ModelInputs(ids, attn, targets, rmask, list(prompt_lens))


def response_logits(logits: torch.Tensor, prompt_lens: list[int], rwidth: int) -> torch.Tensor:
    """Gather, per row, the logits that predict each response token ([B, R, V]).

    Position t's logits predict token t+1, so response token j (at p + j) is predicted at
    p + j - 1.
    """
    b, length, _ = logits.shape
    offsets = torch.arange(rwidth)
    index = torch.stack([(p - 1 + offsets).clamp(max=length - 1) for p in prompt_lens])
    return logits.gather(1, index[:, :, None].expand(b, rwidth, logits.shape[-1]))
