"""A batch of preference pairs as token ids, and its log-probabilities under a model.

Chosen and rejected rows of a pair share the prompt; they go through the model in one
forward (chosen rows first, then rejected rows, as NeMo-Aligner batches them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rl.batch import model_inputs
from rl.logprobs import model_device, response_logprobs


@dataclass
class PairBatch:
    """One entry per pair. `ref_*` are summed reference log-probs, filled by the driver."""

    prompts: list[list[int]]
    chosen: list[list[int]]  # response ids only
    rejected: list[list[int]]
    chosen_rewards: list[float]
    rejected_rewards: list[float]
    ref_chosen: list[float] = field(default_factory=list)
    ref_rejected: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # per pair, e.g. math-on / if / tool (per-kind accuracy)
    weights: list[float] = field(default_factory=list)  # per pair loss weight; empty = all 1 (0 = shard padding)

    def __len__(self) -> int:
        return len(self.prompts)

    def select(self, idx: list[int]) -> "PairBatch":
        def pick(xs):
            return [xs[i] for i in idx] if xs else []

        return PairBatch(pick(self.prompts), pick(self.chosen), pick(self.rejected), pick(self.chosen_rewards),
                         pick(self.rejected_rewards), pick(self.ref_chosen), pick(self.ref_rejected), pick(self.kinds),
                         pick(self.weights))

    def pair_weights(self) -> torch.Tensor:
        return torch.tensor(self.weights or [1.0] * len(self), dtype=torch.float32)

    @staticmethod
    def concat(batches: list["PairBatch"]) -> "PairBatch":
        out = PairBatch([], [], [], [], [])
        for b in batches:
            for name in ("prompts", "chosen", "rejected", "chosen_rewards", "rejected_rewards", "ref_chosen",
                         "ref_rejected", "kinds", "weights"):
                getattr(out, name).extend(getattr(b, name))
        return out

    def sequences(self) -> tuple[list[list[int]], list[int]]:
        """[chosen rows..., rejected rows...] as full sequences, with their prompt lengths."""
        seqs = [p + c for p, c in zip(self.prompts, self.chosen)] + [p + r for p, r in zip(self.prompts, self.rejected)]
        return seqs, [len(p) for p in self.prompts] * 2


def shard_pairs(batch: PairBatch, world: int) -> list[PairBatch]:
    """Equal shards, one per rank; a batch that does not divide is padded with copies of its
    last pair at weight 0 (they run like any pair and add nothing), never truncated."""
    n = len(batch)
    if n == 0:
        raise ValueError("cannot shard an empty batch")
    pad = (-n) % world
    padded = batch.select(list(range(n)) + [n - 1] * pad)
    padded.weights = (batch.weights or [1.0] * n) + [0.0] * pad
    return [padded.select(list(range(r, n + pad, world))) for r in range(world)]


def unique_sequences(batch: PairBatch) -> tuple[list[list[int]], list[int], list[int], list[int]]:
    """The batch's distinct (prompt, response) sequences, shortest first, with each pair's chosen
    and rejected index into them. Online all-pairs batches repeat every sample in up to 2(K-1)
    pairs; forwarding each distinct sequence once makes their cost O(K) instead of O(K^2)."""
    index: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    seqs: list[list[int]] = []
    plens: list[int] = []

    def idx(prompt: list[int], response: list[int]) -> int:
        key = (tuple(prompt), tuple(response))
        if key not in index:
            index[key] = len(seqs)
            seqs.append(list(prompt) + list(response))
            plens.append(len(prompt))
        return index[key]

    chosen = [idx(p, c) for p, c in zip(batch.prompts, batch.chosen)]
    rejected = [idx(p, r) for p, r in zip(batch.prompts, batch.rejected)]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # less padding per micro-batch
    where = {old: new for new, old in enumerate(order)}
    return ([seqs[i] for i in order], [plens[i] for i in order], [where[i] for i in chosen],
            [where[i] for i in rejected])


def sequence_logprob_sums(model, batch: PairBatch, pad_id: int, packing: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """Σ log π over each response's tokens and the token counts, both [2B] (chosen, then rejected)."""
    seqs, plens = batch.sequences()
    return response_logprob_sums(model, seqs, plens, pad_id, packing)


def response_logprob_sums(model, seqs: list[list[int]], plens: list[int], pad_id: int, packing: str = ""
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ log π over each sequence's response tokens (after its prompt length) and the token
    counts, on the model's device (inputs moved there once; logits chunked, see rl.logprobs;
    `packing`: padded or packed rows, see rl.batch.model_inputs)."""
    x = model_inputs(seqs, plens, pad_id, packing).to(model_device(model))
    logp, _ = response_logprobs(model, x)
    return (logp * x.response_mask).sum(1), x.response_mask.sum(1)
