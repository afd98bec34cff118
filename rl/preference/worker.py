"""The preference step as the policy workers run it (PolicyWorker's `train` with a
`PairLoss`, `logprobs` of a PairBatch and `snapshot_reference` call into here), and how
PolicyGroup merges the ranks' statistics."""
from __future__ import annotations

import torch

from core.training import dist
from core.training.materialize import meta_from_config
from rl.preference.batch import PairBatch, response_logprob_sums, sequence_logprob_sums, unique_sequences
from rl.preference.losses import PairLogprobs, PreferenceLossConfig, preference_loss


def chunks(n: int, size: int) -> list[list[int]]:
    return [list(range(s, min(n, s + size))) for s in range(0, n, size)]


def dedup_pays(batch: PairBatch, n_unique: int) -> bool:
    """Forward each distinct sequence once? Only on one rank (sharded ranks must run the same
    number of forwards) and when the pairs share responses: the training path then costs one
    no-grad forward plus one forward/backward per distinct sequence (~4 units) against a
    forward/backward per pair row (~3 units per row, 2 rows per pair)."""
    return dist.world_size() == 1 and 4 * n_unique < 3 * 2 * len(batch)


@torch.no_grad()
def _unique_sums(model, seqs: list[list[int]], plens: list[int], pad_id: int, rows: int, packing: str = ""
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    sums, counts = [], []
    for idx in chunks(len(seqs), rows):
        s, c = response_logprob_sums(model, [seqs[i] for i in idx], [plens[i] for i in idx], pad_id, packing)
        sums.append(s)
        counts.append(c)
    return torch.cat(sums), torch.cat(counts)


@torch.no_grad()
def pair_logprobs(model, batch: PairBatch, pad_id: int, micro_batch_size: int, packing: str = ""
                  ) -> tuple[list[float], list[float]]:
    """Summed log-probs of every chosen and every rejected response (each distinct sequence
    forwarded once on a single rank). `packing`: padded or packed rows (rl.batch.model_inputs)."""
    was_training = model.training
    model.eval()
    seqs, plens, ci, ri = unique_sequences(batch)
    if dist.world_size() == 1 and len(seqs) < 2 * len(batch):
        sums, _ = _unique_sums(model, seqs, plens, pad_id, 2 * micro_batch_size, packing)
        model.train(was_training)
        return sums[ci].tolist(), sums[ri].tolist()
    chosen, rejected = [], []
    for idx in chunks(len(batch), micro_batch_size):
        sums, _ = sequence_logprob_sums(model, batch.select(idx), pad_id, packing)
        chosen += sums[:len(idx)].tolist()
        rejected += sums[len(idx):].tolist()
    model.train(was_training)
    return chosen, rejected


def _t(xs, device):
    return torch.tensor(xs, dtype=torch.float32, device=device) if xs else None


def _pairs(sums, counts, ci, ri, batch: PairBatch) -> PairLogprobs:
    """The loss inputs: sums/counts indexed per pair, the batch's reference sums and rewards on their device."""
    d = sums.device
    return PairLogprobs(sums[ci], sums[ri], counts[ci], counts[ri], _t(batch.ref_chosen, d), _t(batch.ref_rejected, d),
                        _t(batch.chosen_rewards, d), _t(batch.rejected_rewards, d))


def _dedup_train_step(backend, batch: PairBatch, cfg: PreferenceLossConfig, pad_id: int, micro_batch_size: int,
                      pair_normalizer: float, unique, packing: str = "") -> dict[str, float]:
    """The same gradient as the per-pair path with each distinct sequence forwarded once: the loss
    depends on a sequence only through its summed log-prob s_u, so dL/dθ = Σ_u (dL/ds_u) ∇s_u.
    A no-grad pass gives every s_u, autograd on the pair losses gives dL/ds_u, then each
    micro-batch of distinct sequences is back-propagated with those weights."""
    seqs, plens, ci, ri = unique
    rows = 2 * micro_batch_size
    backend.model.train()
    sums, counts = _unique_sums(backend.model, seqs, plens, pad_id, rows, packing)
    s = sums.clone().requires_grad_(True)
    out = preference_loss(_pairs(s, counts, ci, ri, batch), cfg)
    pair_w = batch.pair_weights().to(s.device)
    (weights,) = torch.autograd.grad((pair_w * out.loss).sum() / pair_normalizer, s)
    for idx in chunks(len(seqs), rows):
        live = [i for i in idx if weights[i] != 0]  # tied samples carry no gradient
        if not live:
            continue
        sub, _ = response_logprob_sums(backend.model, [seqs[i] for i in live], [plens[i] for i in live], pad_id,
                                       packing)
        backend.backward((weights[live] * sub).sum())
    return {**out.stats(pair_w), "pairs": float(pair_w.sum()), "sequences": float(len(seqs)),
            **backend.optimizer_step()}


def preference_train_step(backend, batch: PairBatch, cfg: PreferenceLossConfig, pad_id: int, micro_batch_size: int,
                          pair_normalizer: float, dedup: bool | None = None, packing: str = "") -> dict[str, float]:
    """One optimizer step; the loss is the weighted sum over pairs divided by the *global* pair
    count (shard padding has weight 0). Returns weighted sums of the per-pair statistics (the
    group divides by `pairs`). `dedup`: forward each distinct sequence once (None = when it
    pays, see `dedup_pays`). `packing`: padded or packed rows (rl.batch.model_inputs)."""
    unique = unique_sequences(batch)
    if dedup if dedup is not None else dedup_pays(batch, len(unique[0])):
        return _dedup_train_step(backend, batch, cfg, pad_id, micro_batch_size, pair_normalizer, unique, packing)
    backend.model.train()
    totals: dict[str, float] = {}
    for idx in chunks(len(batch), micro_batch_size):
        sub = batch.select(idx)
        sums, counts = sequence_logprob_sums(backend.model, sub, pad_id, packing)
        n = len(idx)
        out = preference_loss(_pairs(sums, counts, list(range(n)), list(range(n, 2 * n)), sub), cfg)
        w = sub.pair_weights().to(sums.device)
        backend.backward((w * out.loss).sum() / pair_normalizer)
        for k, v in out.stats(w).items():
            totals[k] = totals.get(k, 0.0) + v
    return {**totals, "pairs": float(batch.pair_weights().sum()), **backend.optimizer_step()}


def merge_step_stats(parts: list[dict[str, float]]) -> dict[str, float]:
    """Per-rank sums -> means over every pair; optimizer figures from rank 0."""
    pairs = sum(p["pairs"] for p in parts) or 1.0
    out = {k: sum(p[k] for p in parts) / pairs for k in parts[0] if k not in ("pairs", "sequences", "grad_norm", "lr")}
    if all("sequences" in p for p in parts):
        out["sequences"] = sum(p["sequences"] for p in parts)
    out.update(pairs=pairs, grad_norm=parts[0]["grad_norm"], lr=parts[0]["lr"])
    return out


def reference_copy(backend) -> torch.nn.Module:
    """A frozen copy of the current policy, placed like it (sharded on the same mesh under
    FSDP2): each rank copies its own shard, nothing is gathered."""
    from transformers import AutoModelForCausalLM

    inner = getattr(backend.model, "module", backend.model)
    if hasattr(backend, "engine"):  # DeepSpeed partitions its own way: gather, then copy
        ref = AutoModelForCausalLM.from_config(inner.config, dtype=torch.float32,
                                               trust_remote_code=bool(getattr(inner.config, "auto_map", None)))
        state = backend.full_state_dict()
        if dist.world_size() > 1:  # ZeRO-3 gathers to rank 0 only
            box = [state]
            torch.distributed.broadcast_object_list(box, src=0)
            state = box[0]
        ref.load_state_dict(state)
        return backend.frozen(ref)
    ref = backend.frozen(meta_from_config(inner.config))
    with torch.no_grad():
        ref.load_state_dict(inner.state_dict())  # DTensor -> DTensor on the same mesh: a local copy
    return ref
