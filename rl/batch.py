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


def micro_batches(lengths: list[int], max_sequences: int, max_tokens: int = 0, packed: bool = False
                  ) -> list[list[int]]:
    """Split a batch into micro-batches of similar lengths, to cut padding.

    Sequences are taken shortest first; a micro-batch closes at `max_sequences` or when its
    size would pass `max_tokens` (0 = no token cap): its padded size (count x longest), or
    with `packed` its real tokens (packed rows hold no padding to count). Rollouts end
    at varied lengths, and right-padding every micro-batch to its longest member wastes the
    forward and backward FLOPs of the gap; grouping by length keeps that gap small. A single
    sequence longer than `max_tokens` still gets a micro-batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    chunks: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        size = used + lengths[i] if packed else (len(current) + 1) * lengths[i]  # sorted: i is the longest so far
        if current and (len(current) == max_sequences or (max_tokens and size > max_tokens)):
            chunks.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
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
    """One micro-batch as model inputs, padded or packed, and the B sequences' response tokens.

    Padded: one sequence per row, right-padded to the longest (`attention_mask` marks the
    real tokens). Packed (padding-free): several sequences per row, one after another, with
    `position_ids` restarting at 0 at each sequence and `seq_ids` naming the sequence of each
    token (-1 on a row's tail padding); attention stays inside a sequence (`model_kwargs`).
    Either way `targets`/`response_mask` are [B, R] per sequence and `flat_positions` [B, R]
    indexes the flattened [rows * width] hidden states that predict each response token.
    """

    input_ids: torch.Tensor  # [rows, width]
    attention_mask: torch.Tensor | None  # [B, width] padded; None when packed
    targets: torch.Tensor  # [B, R] response token ids, right-padded
    response_mask: torch.Tensor  # [B, R] 1 on real response tokens
    prompt_lens: list[int]
    flat_positions: torch.Tensor  # [B, R] index into the flattened [rows * width] positions
    position_ids: torch.Tensor | None = None  # [rows, width] packed: 0, 1, ... within each sequence
    seq_ids: torch.Tensor | None = None  # [rows, width] packed: the sequence's index in its row, -1 = padding

    @property
    def packed(self) -> bool:
        return self.seq_ids is not None

    def to(self, device: torch.device | str) -> "ModelInputs":
        """The same inputs on `device` (the policy worker moves them once, at its boundary)."""
        def move(t):
            return None if t is None else t.to(device)

        return ModelInputs(move(self.input_ids), move(self.attention_mask), move(self.targets),
                           move(self.response_mask), self.prompt_lens, move(self.flat_positions),
                           move(self.position_ids), move(self.seq_ids))

    def response_positions(self) -> torch.Tensor:
        """[B, R] for padded inputs: the position in its row whose logits predict each response
        token. Position t's logits predict token t+1, so response token j (at p + j) is
        predicted at p + j - 1 (clamped into the row for padding past its end)."""
        if self.packed:
            raise ValueError("packed inputs index responses with flat_positions")
        return self.flat_positions - self.input_ids.shape[1] * torch.arange(
            len(self.prompt_lens), device=self.flat_positions.device)[:, None]

    def model_kwargs(self, native_packing: bool) -> dict[str, torch.Tensor | None]:
        """The forward's keyword arguments. Packed inputs on a model whose masks come from
        transformers (`native_packing`) pass `position_ids` alone: transformers finds the
        sequences from the restarts and builds each attention implementation's mask (a
        block-diagonal one for sdpa/eager/flex, varlen kernels for flash attention). Other
        models get the block-diagonal causal mask as a 4D additive float mask."""
        if not self.packed:
            return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if native_packing:
            return {"input_ids": self.input_ids, "position_ids": self.position_ids, "attention_mask": None}
        same = self.seq_ids[:, :, None] == self.seq_ids[:, None, :]
        causal = torch.ones(same.shape[-2:], dtype=torch.bool, device=same.device).tril()
        blocked = ~(same & causal)[:, None]
        mask = torch.zeros(blocked.shape, device=blocked.device).masked_fill(blocked, torch.finfo(torch.float32).min)
        return {"input_ids": self.input_ids, "position_ids": self.position_ids, "attention_mask": mask}


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: sequence indices per row, no row longer than `capacity` (which
    must fit the longest sequence). With capacity = the longest sequence a row's attention
    costs no more than one padded row, and the rows hold almost no padding."""
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if lengths[i] > capacity:
            raise ValueError(f"sequence {i} has {lengths[i]} tokens > row capacity {capacity}")
        slot = next((r for r, f in enumerate(free) if f >= lengths[i]), None)
        if slot is None:
            rows.append([])
            free.append(capacity)
            slot = len(rows) - 1
        rows[slot].append(i)
        free[slot] -= lengths[i]
    return rows


PACKINGS = ("", "rows", "one_row")


def model_inputs(sequences: list[list[int]], prompt_lens: list[int], pad_id: int, packing: str = "") -> ModelInputs:
    """Padded inputs (`packing` ""), or the sequences packed into rows no longer than the
    longest one ("rows"), or all in a single row ("one_row", as flash attention's varlen
    path needs); `rl.logprobs.check_packing` says which a model takes."""
    if packing not in PACKINGS:
        raise ValueError(f"packing must be one of {PACKINGS}, got {packing!r}")
    rlens = [len(s) - p for s, p in zip(sequences, prompt_lens)]
    rwidth = max(max(rlens), 1)
    targets = pad_right([s[p:] for s, p in zip(sequences, prompt_lens)], rwidth, pad_id, torch.long)
    rmask = pad_right([[1.0] * n for n in rlens], rwidth, 0.0)
    offsets = torch.arange(rwidth)
    if not packing:
        width = max(len(s) for s in sequences)
        ids = pad_right(sequences, width, pad_id, torch.long)
        attn = pad_right([[1] * len(s) for s in sequences], width, 0, torch.long)
        flat = torch.stack([b * width + (p - 1 + offsets).clamp(max=width - 1) for b, p in enumerate(prompt_lens)])
        return ModelInputs(ids, attn, targets, rmask, list(prompt_lens), flat)
    lengths = [len(s) for s in sequences]
    rows = [list(range(len(sequences)))] if packing == "one_row" else pack_rows(lengths, max(lengths))
    width = max(sum(lengths[i] for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    seg = torch.full((len(rows), width), -1, dtype=torch.long)
    flat = torch.zeros((len(sequences), rwidth), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for k, i in enumerate(row):
            n = lengths[i]
            ids[r, start:start + n] = torch.tensor(sequences[i], dtype=torch.long)
            pos[r, start:start + n] = torch.arange(n)
            seg[r, start:start + n] = k
            flat[i] = r * width + start + (prompt_lens[i] - 1 + offsets).clamp(max=n - 1)
            start += n
        pos[r, start:] = torch.arange(width - start)  # tail padding: a sequence of its own
    return ModelInputs(ids, None, targets, rmask, list(prompt_lens), flat, pos, seg)
