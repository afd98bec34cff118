"""One rank of a PolicyWorker group without Ray (used by test_policy_worker): takes its
shard of a fixed 5-sample batch, computes old/reference log-probs, trains one GRPO step
with KL, snapshots a reference, and writes what it saw as JSON.

usage: policy_ranks.py MODEL_DIR OUT_PREFIX RANK WORLD PORT
"""
import json
import sys

import torch

from core.training import TrainConfig
from rl.batch import RolloutBatch, shard_batch
from rl.losses import ClippedPolicyLoss, PolicyLossConfig
from rl.policy_worker import PolicyWorker

LENGTHS = [(5, 7), (3, 4), (6, 9), (4, 2), (2, 11)]  # (prompt, response) tokens: 5 samples, odd on purpose


def batch(vocab: int) -> RolloutBatch:
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(3, vocab, (p + r,), generator=g).tolist() for p, r in LENGTHS]
    masks = [[1] * r if i != 3 else [0] * r for i, (_, r) in enumerate(LENGTHS)]  # sample 3: overlong-masked
    return RolloutBatch(seqs, [p for p, _ in LENGTHS], [1.0, -0.5, 0.25, 2.0, -1.0], masks)


def main(model_dir: str, out: str, rank: int, world: int, port: int) -> None:
    torch.set_num_threads(1)
    cfg = TrainConfig(lr=1e-2, schedule="constant", warmup_steps=0, backend="fsdp2")
    worker = PolicyWorker(model_dir, cfg, rank=rank, world_size=world, master_port=port, keep_reference=True,
                          micro_batch_size=2, logprob_chunk_tokens=4)
    full = batch(len(worker.tokenizer))
    loss = ClippedPolicyLoss.for_batch(PolicyLossConfig(kl_coef=0.1), full.loss_masks)  # unpadded counts
    shard = shard_batch(full, world)[rank]
    shard.ref_logprobs = worker.logprobs(shard, model="reference")
    steps = []
    for _ in range(2):  # the second step trains away from the reference: KL is live
        shard.old_logprobs = worker.logprobs(shard)
        steps.append(worker.train(shard, loss))
    after = worker.logprobs(shard)
    worker.snapshot_reference("preference")
    snapshot = worker.logprobs(shard, model="preference")
    # exact resume: save, take a third step; a fresh worker that loads the state must take the same step
    worker.save_hf(f"{out}.hf", shard_bytes=2**17)  # several shards: gathered and written one at a time
    worker.save_state(f"{out}.state")
    shard.old_logprobs = after
    third = worker.train(shard, loss)
    resumed = PolicyWorker(model_dir, cfg, rank=rank, world_size=world, master_port=port, keep_reference=True,
                           micro_batch_size=2, logprob_chunk_tokens=4)
    resumed.load_state(f"{out}.state")
    resumed_third = resumed.train(shard, loss)
    local = sum((p.to_local() if hasattr(p, "to_local") else p).numel() for p in worker.backend.model.parameters())
    total = sum(p.numel() for p in worker.backend.model.parameters())
    json.dump({"steps": steps, "old": shard.old_logprobs, "ref": shard.ref_logprobs, "after": after,
               "snapshot": snapshot, "third": third, "resumed_third": resumed_third, "local_numel": local, "numel": total,
               "rows": len(shard)}, open(f"{out}.rank{rank}.json", "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
