"""The policy the preference loops drive: a PolicyGroup (Ray actors, shared with GRPO) or
`LocalPolicy`, one PolicyWorker in this process. Both offer the preference protocol
(`reset_preference_reference`, `sequence_logprobs`, `preference_step`) on top of the
worker's `train` / `logprobs` / `snapshot_reference`."""
from __future__ import annotations

from core.training import TrainConfig
from rl.policy_worker import PolicyWorker
from rl.preference.batch import PairBatch
from rl.preference.losses import PairLoss, PreferenceLossConfig
from rl.preference.worker import merge_step_stats


class LocalPolicy:
    def __init__(self, model_dir: str, train: TrainConfig, micro_batch_size: int, packing: str = "off"):
        self.worker = PolicyWorker(model_dir, train, keep_reference=False, micro_batch_size=micro_batch_size,
                                   packing=packing)

    def reset_preference_reference(self) -> None:
        self.worker.snapshot_reference("preference")

    def sequence_logprobs(self, batch: PairBatch, reference: bool = False) -> tuple[list[float], list[float]]:
        return self.worker.logprobs(batch, "preference" if reference else "policy")

    def preference_step(self, batch: PairBatch, loss_cfg: PreferenceLossConfig) -> dict[str, float]:
        return merge_step_stats([self.worker.train(batch, PairLoss(loss_cfg, float(len(batch))))])

    def save_hf(self, out_dir: str) -> None:
        self.worker.save_hf(out_dir)

    def save_state(self, directory: str) -> None:
        self.worker.save_state(directory)

    def load_state(self, directory: str) -> None:
        self.worker.load_state(directory)

    def shutdown(self) -> None:
        pass


def heldout_accuracy(policy, batch: PairBatch) -> dict[str, float]:
    """Does the policy rank chosen above rejected? By mean token log-prob (the headline,
    length-fair) and by summed log-prob; ties count half. With `batch.kinds`, also
    `pref_accuracy_<kind>` (and `pref_accuracy_math` over math_on + math_off) and their counts."""
    if not len(batch):
        return {"pref_accuracy": 0.0, "pref_accuracy_sum": 0.0, "pref_logp_margin": 0.0}
    c, r = policy.sequence_logprobs(batch)
    nc, nr = [max(len(x), 1) for x in batch.chosen], [max(len(x), 1) for x in batch.rejected]
    means = [(a / m, b / n) for a, b, m, n in zip(c, r, nc, nr)]
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in means]
    out = {"pref_accuracy": sum(wins) / len(batch),
           "pref_accuracy_sum": sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(c, r)) / len(batch),
           "pref_logp_margin": sum(a - b for a, b in means) / len(batch)}
    if len(batch.kinds) == len(batch) and len(set(batch.kinds)) > 1:
        groups: dict[str, list[float]] = {}
        for kind, w in zip(batch.kinds, wins):
            groups.setdefault(kind, []).append(w)
            if "_" in kind:
                groups.setdefault(kind.split("_")[0], []).append(w)
        for kind, ws in sorted(groups.items()):
            out[f"pref_accuracy_{kind}"] = sum(ws) / len(ws)
            out[f"pairs_{kind}"] = float(len(ws))
    return out


def with_reference(policy, batch: PairBatch, cfg: PreferenceLossConfig) -> PairBatch:
    """Fill the batch's reference log-probs from the policy's preference reference."""
    if cfg.needs_reference:
        batch.ref_chosen, batch.ref_rejected = policy.sequence_logprobs(batch, reference=True)
    return batch
