"""PolicyWorker: one rank of the trainable policy (and its frozen reference).

A plain class; `rl.actors` hosts it in a Ray actor. Ranks join one process group
(FSDP2 over gloo on CPU / NCCL on GPU, or DeepSpeed ZeRO) through the environment the
actor group sets; each rank receives its shard of every batch.
"""
from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from core.checkpoint import load_hf
from core.seed import seed_everything
from core.training import TrainConfig, build_backend
from rl.batch import RolloutBatch, micro_batches, model_inputs, pad_right, response_logits
from rl.lora import adapters_disabled, base_model, check_adapter, merged_state_dict
from rl.losses import PolicyLossConfig, policy_loss
from rl.preference import worker as preference
from rl.preference.batch import PairBatch
from rl.preference.losses import PreferenceLossConfig
from sft.adapters import apply_adapter
from sft.config import AdapterConfig


def _logprobs_and_entropy(model, sequences, prompt_lens, pad_id) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = model_inputs(sequences, prompt_lens, pad_id)
    logits = model(input_ids=x.input_ids, attention_mask=x.attention_mask).logits.float()
    resp = response_logits(logits, x.prompt_lens, x.targets.shape[1])
    logp_all = F.log_softmax(resp, dim=-1)
    logp = logp_all.gather(-1, x.targets[:, :, None])[:, :, 0]
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy, x.response_mask


class PolicyWorker:
    def __init__(self, model_dir: str, train: TrainConfig, rank: int = 0, world_size: int = 1,
                 master_addr: str = "127.0.0.1", master_port: int = 29500, keep_reference: bool = True,
                 micro_batch_size: int = 64, micro_batch_tokens: int = 0, adapter: AdapterConfig | None = None):
        os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": "0",
                           "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port)})
        seed_everything(train.seed)
        self.adapter = adapter or AdapterConfig()
        check_adapter(self.adapter)
        model, self.tokenizer = load_hf(model_dir)
        self.reference = None
        if self.adapter.method == "lora":
            model = apply_adapter(model, self.adapter)  # the reference is this model with adapters off
        elif keep_reference:
            self.reference = copy.deepcopy(model).eval().requires_grad_(False)
        self.backend = build_backend(train, model)
        self.rank, self.world_size = rank, world_size
        self.micro_batch_size, self.micro_batch_tokens = micro_batch_size, micro_batch_tokens
        self.pad_id = self.tokenizer.pad_token_id

    def _chunks(self, batch: RolloutBatch) -> list[list[int]]:
        return micro_batches([len(s) for s in batch.sequences], self.micro_batch_size, self.micro_batch_tokens)

    @torch.no_grad()
    def logprobs(self, batch: RolloutBatch, reference: bool = False) -> list[list[float]]:
        """Per response token logprobs under the current policy (or the frozen reference)."""
        model = self.reference if reference and self.adapter.method != "lora" else self.backend.model
        out: list[list[float]] = [[] for _ in range(len(batch))]
        with adapters_disabled(model, self.adapter) if reference else contextlib.nullcontext():
            for idx in self._chunks(batch):
                sub = batch.select(idx)
                logp, _, _ = _logprobs_and_entropy(model, sub.sequences, sub.prompt_lens, self.pad_id)
                for i, row, n in zip(idx, logp, sub.response_lens()):
                    out[i] = row[:n].tolist()
        return out

    def train_step(self, batch: RolloutBatch, loss_cfg: PolicyLossConfig, token_normalizer: float,
                   seq_normalizer: float) -> dict[str, float]:
        """One optimizer step over this rank's shard; normalizers count the *global* batch."""
        self.backend.model.train()
        totals: dict[str, float] = {"loss": 0.0, "entropy": 0.0, "clip_fraction": 0.0, "kl": 0.0, "ratio_mean": 0.0}
        tokens = 0.0
        for idx in self._chunks(batch):
            sub = batch.select(idx)
            logp, entropy, rmask = _logprobs_and_entropy(self.backend.model, sub.sequences, sub.prompt_lens, self.pad_id)
            width = logp.shape[1]
            mask = pad_right(sub.loss_masks, width) * rmask
            loss, stats = policy_loss(
                logp, pad_right(sub.old_logprobs, width), torch.tensor(sub.advantages, dtype=torch.float32), mask,
                loss_cfg, ref_logp=pad_right(sub.ref_logprobs, width) if sub.ref_logprobs else None,
                generator_logp=pad_right(sub.generator_logprobs, width) if sub.generator_logprobs else None,
                token_normalizer=token_normalizer, seq_normalizer=seq_normalizer)
            self.backend.backward(loss)
            n = float(mask.sum())
            tokens += n
            totals["loss"] += float(loss)
            totals["entropy"] += float((entropy.detach() * mask).sum())
            for k in ("clip_fraction", "kl", "ratio_mean"):
                totals[k] += stats[k] * n
        step = self.backend.optimizer_step()
        denom = max(tokens, 1.0)
        return {"loss": totals["loss"], "tokens": tokens, "entropy": totals["entropy"] / denom,
                "clip_fraction": totals["clip_fraction"] / denom, "kl": totals["kl"] / denom,
                "ratio_mean": totals["ratio_mean"] / denom, **step}

    # ---- preference stage (rl.preference) ---------------------------------------------
    def reset_preference_reference(self) -> None:
        """The preference reference becomes a frozen copy of the current policy (collective).
        Kept apart from `reference` so GRPO's KL anchor is never moved."""
        self.preference_reference = preference.reference_copy(self.backend)

    def sequence_logprobs(self, batch: PairBatch, reference: bool = False) -> tuple[list[float], list[float]]:
        """Summed log-probs of each pair's chosen and rejected response."""
        model = getattr(self, "preference_reference", None) if reference else self.backend.model
        if model is None:
            raise RuntimeError("no preference reference: call reset_preference_reference() first")
        return preference.pair_logprobs(model, batch, self.pad_id, self.micro_batch_size)

    def preference_step(self, batch: PairBatch, loss_cfg: PreferenceLossConfig,
                        pair_normalizer: float | None = None) -> dict[str, float]:
        """One optimizer step on this rank's pairs; statistics are sums (see merge_step_stats)."""
        return preference.preference_train_step(self.backend, batch, loss_cfg, self.pad_id, self.micro_batch_size,
                                                 pair_normalizer or float(len(batch)))

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Gathered HF-named weights, adapters merged (collective: every rank calls it; rank 0 uses it)."""
        state = self.backend.full_state_dict()
        if self.adapter.method == "lora" and state:
            state = merged_state_dict(state, self.adapter.alpha / self.adapter.rank)
        return state

    def state_buckets(self, bucket_bytes: int) -> list[Any] | None:
        """Weights split into buckets of about `bucket_bytes`, each put in the Ray object store.

        Returns the object refs on rank 0 and None elsewhere.
        """
        import ray

        state = self.full_state_dict()
        if self.rank != 0:
            return None
        buckets, current, size = [], {}, 0
        for name, tensor in state.items():
            current[name] = tensor
            size += tensor.numel() * tensor.element_size()
            if size >= bucket_bytes:
                buckets.append(ray.put(current))
                current, size = {}, 0
        if current:
            buckets.append(ray.put(current))
        return buckets

    def init_weight_sender(self, host: str, port: int, world_size: int) -> None:
        """CUDA: rank 0 joins the NCCL group shared with every generator worker."""
        if self.rank == 0:
            from rl.nccl_sync import NcclWeightSender

            self._sender = NcclWeightSender(host, port, world_size)

    def weight_specs(self) -> list:
        from rl.nccl_sync import NcclWeightSender

        return NcclWeightSender.specs(self.full_state_dict())

    def send_weights(self) -> None:
        """Collective over the policy ranks (gather), then rank 0 broadcasts over NCCL."""
        state = self.full_state_dict()
        if self.rank == 0:
            self._sender.send(state)

    def save_hf(self, out_dir: str) -> str:
        state = self.full_state_dict()
        if self.rank == 0:
            from core.checkpoint import save_hf

            save_hf(base_model(self.backend.model, self.adapter), self.tokenizer, out_dir, state_dict=state)
        return out_dir

    def save_state(self, directory: str) -> None:
        from core.seed import rng_state

        self.backend.save_state(directory)
        if self.rank == 0:
            torch.save(rng_state(), Path(directory) / f"rng_rank{self.rank}.pt")

    def load_state(self, directory: str) -> None:
        from core.seed import set_rng_state

        self.backend.load_state(directory)
        path = Path(directory) / f"rng_rank{self.rank}.pt"
        if path.exists():
            set_rng_state(torch.load(path, weights_only=False))
