"""The preference step as the policy workers run it (PolicyWorker's `preference_step`,
`sequence_logprobs`, `reset_preference_reference` call into here), and how PolicyGroup
merges the ranks' statistics."""
from __future__ import annotations

import torch

from core.training import dist
from rl.preference.batch import PairBatch, sequence_logprob_sums
from rl.preference.losses import PairLogprobs, PreferenceLossConfig, preference_loss


def chunks(n: int, size: int) -> list[list[int]]:
    return [list(range(s, min(n, s + size))) for s in range(0, n, size)]


@torch.no_grad()
def pair_logprobs(model, batch: PairBatch, pad_id: int, micro_batch_size: int) -> tuple[list[float], list[float]]:
    """Summed log-probs of every chosen and every rejected response."""
    was_training = model.training
    model.eval()
    chosen, rejected = [], []
    for idx in chunks(len(batch), micro_batch_size):
        sums, _ = sequence_logprob_sums(model, batch.select(idx), pad_id)
        chosen += sums[:len(idx)].tolist()
        rejected += sums[len(idx):].tolist()
    model.train(was_training)
    return chosen, rejected


def preference_train_step(backend, batch: PairBatch, cfg: PreferenceLossConfig, pad_id: int, micro_batch_size: int,
                          pair_normalizer: float) -> dict[str, float]:
    """One optimizer step; the loss is the sum over pairs divided by the *global* pair count.
    Returns sums of the per-pair statistics (the group divides by `pairs`)."""
    backend.model.train()
    totals: dict[str, float] = {}
    for idx in chunks(len(batch), micro_batch_size):
        sub = batch.select(idx)
        sums, counts = sequence_logprob_sums(backend.model, sub, pad_id)
        n = len(idx)

        def t(xs):
            return torch.tensor(xs, dtype=torch.float32) if xs else None

        out = preference_loss(PairLogprobs(sums[:n], sums[n:], counts[:n], counts[n:], t(sub.ref_chosen),
                                           t(sub.ref_rejected), t(sub.chosen_rewards), t(sub.rejected_rewards)), cfg)
        backend.backward(out.loss.sum() / pair_normalizer)
        for k, v in out.stats().items():
            totals[k] = totals.get(k, 0.0) + v
    return {**totals, "pairs": float(len(batch)), **backend.optimizer_step()}


def merge_step_stats(parts: list[dict[str, float]]) -> dict[str, float]:
    """Per-rank sums -> means over every pair; optimizer figures from rank 0."""
    pairs = sum(p["pairs"] for p in parts) or 1.0
    out = {k: sum(p[k] for p in parts) / pairs for k in parts[0] if k not in ("pairs", "grad_norm", "lr")}
    out.update(pairs=pairs, grad_norm=parts[0]["grad_norm"], lr=parts[0]["lr"])
    return out


def reference_copy(backend) -> torch.nn.Module:
    """A frozen, unsharded copy of the current policy on every rank (collective)."""
    from transformers import AutoModelForCausalLM

    state = backend.full_state_dict()
    if dist.world_size() > 1:  # sharded backends gather to rank 0 only
        box = [state]
        torch.distributed.broadcast_object_list(box, src=0)
        state = box[0]
    inner = getattr(backend.model, "module", backend.model)
    ref = AutoModelForCausalLM.from_config(inner.config, dtype=torch.float32,
                                           trust_remote_code=bool(getattr(inner.config, "auto_map", None)))
    ref.load_state_dict(state)
    return ref.to(dist.device()).eval().requires_grad_(False)
