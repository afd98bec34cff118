"""PolicyWorker: one rank of the trainable policy and its frozen references.

A plain class (torch + transformers only; `rl.actors` hosts it in a Ray actor). Ranks join
one process group (FSDP2 over gloo on CPU / NCCL on GPU, or DeepSpeed ZeRO) through the
environment; each rank receives its shard of every batch (`rl.batch.shard_batch`).

The interface is two calls: `train(batch, loss)`, where the loss object (a
`ClippedPolicyLoss` for GRPO, a `PairLoss` for the preference objectives) carries its
global normalisers, and `logprobs(batch, model)` for the policy or a named frozen reference.

Memory: the model is built on the meta device, sharded, and each rank reads only its slice
of the weights (`core.training.materialize`); references are sharded on the same mesh.
Device placement: inputs are built on the CPU and moved once, at this class's boundary, to
the device the backend placed the model on; results come back as Python lists.
Packing (`packing` auto/on): each micro-batch's sequences are packed into padding-free rows
(`rl.batch.model_inputs`), for log-probs and training, GRPO and preference alike.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AutoTokenizer

from core.checkpoint import load_hf, save_hf
from core.seed import seed_everything
from core.training import TrainConfig, build_backend, dist
from core.training.materialize import INDEX, WEIGHTS, meta_model
from rl.batch import RolloutBatch, micro_batches, model_inputs, pad_right
from rl.logprobs import DEFAULT_CHUNK_TOKENS, packing_layout, response_logprobs
from rl.lora import NO_ADAPTER, adapters_disabled, base_model, check_adapter, merged_state_dict
from rl.losses import ClippedPolicyLoss, policy_loss
from rl.preference import worker as preference
from rl.preference.batch import PairBatch
from rl.preference.losses import PairLoss
from rl.weight_stream import gather_bucket, plan_buckets

if TYPE_CHECKING:  # imports stay torch + transformers: a bare GPU box runs this class
    from sft.config import AdapterConfig

POLICY, REFERENCE, PREFERENCE = "policy", "reference", "preference"


class PolicyWorker:
    def __init__(self, model_dir: str, train: TrainConfig, rank: int = 0, world_size: int = 1,
                 master_addr: str = "127.0.0.1", master_port: int = 29500, keep_reference: bool = True,
                 micro_batch_size: int = 64, micro_batch_tokens: int = 0, adapter: AdapterConfig | None = None,
                 reference_dir: str | None = None, logprob_chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                 local_rank: int = 0, packing: str = "off"):
        """`reference_dir` (default `model_dir`): the KL anchor's weights. `local_rank`: the CUDA
        device index of this rank (0 under Ray, which shows each policy actor one GPU; the
        rank's index on its node when ranks share a node's GPUs). `packing`: padding-free
        micro-batches, auto | on | off (see `rl.logprobs.packing_layout`)."""
        os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(local_rank),
                           "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port)})
        seed_everything(train.seed)
        if adapter is not None:
            check_adapter(adapter)
        self.adapter = adapter if adapter is not None else NO_ADAPTER
        self.lora = adapter if self.adapter.method == "lora" else None
        self.lora_scaling = self.lora.alpha / self.lora.rank if self.lora else None  # merged = W + s * B @ A
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.pad_id = self.tokenizer.pad_token_id
        self.rank, self.world_size = rank, world_size
        self.micro_batch_size, self.micro_batch_tokens = micro_batch_size, micro_batch_tokens
        self.chunk_tokens = logprob_chunk_tokens
        self.references: dict[str, nn.Module] = {}
        if self.lora or train.backend == "deepspeed":
            # peft and DeepSpeed wrap a built model; the LoRA reference is this model, adapters off
            model, _ = load_hf(model_dir)
            if self.lora:
                from sft.adapters import apply_adapter

                model = apply_adapter(model, self.lora)
            self.backend = build_backend(train, model)
        else:
            self.backend = build_backend(train, meta_model(model_dir), weights=model_dir)
        if keep_reference and not self.lora:
            self.references[REFERENCE] = self.backend.frozen(meta_model(reference_dir or model_dir),
                                                             weights=reference_dir or model_dir)
        self.device = dist.device()
        self.packing = packing_layout(self.backend.model, packing)  # rl.batch.model_inputs's layout; "" = padded

    # ---- the interface ----------------------------------------------------------------
    @torch.no_grad()
    def logprobs(self, batch: RolloutBatch | PairBatch, model: str = POLICY) -> Any:
        """Log-probs under the policy or a frozen reference (`reference`: the KL anchor,
        `preference`: the snapshot `snapshot_reference` took). A RolloutBatch gives per
        response token lists; a PairBatch gives (chosen sums, rejected sums)."""
        module, context = self._model(model)
        with context:
            if isinstance(batch, PairBatch):
                return preference.pair_logprobs(module, batch, self.pad_id, self.micro_batch_size, self.packing)
            out: list[list[float]] = [[] for _ in range(len(batch))]
            for idx in self._chunks(batch):
                sub = batch.select(idx)
                logp, _, _ = self._forward(module, sub)
                for i, row, n in zip(idx, logp.cpu(), sub.response_lens()):
                    out[i] = row[:n].tolist()
        return out

    def train(self, batch: RolloutBatch | PairBatch, loss: ClippedPolicyLoss | PairLoss) -> dict[str, float]:
        """One optimizer step over this rank's shard; the loss's normalisers count the global batch.
        Statistics: GRPO's are token-weighted means plus `tokens`; preference ones are sums plus `pairs`."""
        if isinstance(loss, ClippedPolicyLoss) and isinstance(batch, RolloutBatch):
            return self._train_policy(batch, loss)
        if isinstance(loss, PairLoss) and isinstance(batch, PairBatch):
            return preference.preference_train_step(self.backend, batch, loss.cfg, self.pad_id,
                                                    self.micro_batch_size, loss.pair_normalizer, packing=self.packing)
        raise TypeError(f"no training step for a {type(batch).__name__} with a {type(loss).__name__}")

    def snapshot_reference(self, name: str = PREFERENCE) -> None:
        """The named reference becomes a frozen copy of the current policy, sharded like it
        (no gather: each rank copies its own shard). The KL anchor `reference` cannot be moved."""
        if name in (POLICY, REFERENCE):
            raise ValueError(f"{name!r} is not a snapshot name: the policy and the KL anchor never move")
        self.references[name] = preference.reference_copy(self.backend)

    # ---- helpers ----------------------------------------------------------------------
    def _model(self, name: str) -> tuple[nn.Module, Any]:
        if name == POLICY:
            return self.backend.model, contextlib.nullcontext()
        if name == REFERENCE and self.lora:
            return self.backend.model, adapters_disabled(self.backend.model, self.lora)
        if name not in self.references:
            raise KeyError(f"no model {name!r} on this worker (have: {[POLICY, *self.references]}); "
                           "GRPO keeps `reference` when kl_coef > 0, `snapshot_reference` makes others")
        return self.references[name], contextlib.nullcontext()

    def _chunks(self, batch: RolloutBatch) -> list[list[int]]:
        return micro_batches([len(s) for s in batch.sequences], self.micro_batch_size, self.micro_batch_tokens,
                             packed=bool(self.packing))

    def _forward(self, module: nn.Module, sub: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-prob, entropy, response mask), [B, R] on the device; inputs moved here, once."""
        x = model_inputs(sub.sequences, sub.prompt_lens, self.pad_id, self.packing).to(self.device)
        logp, entropy = response_logprobs(module, x, self.chunk_tokens)
        return logp, entropy, x.response_mask

    def _rows(self, rows: list[list[float]], width: int) -> torch.Tensor | None:
        return pad_right(rows, width).to(self.device) if rows else None

    def _train_policy(self, batch: RolloutBatch, loss_obj: ClippedPolicyLoss) -> dict[str, float]:
        self.backend.model.train()
        totals = {"loss": 0.0, "entropy": 0.0, "clip_fraction": 0.0, "kl": 0.0, "ratio_mean": 0.0}
        tokens = 0.0
        for idx in self._chunks(batch):
            sub = batch.select(idx)
            logp, entropy, rmask = self._forward(self.backend.model, sub)
            width = logp.shape[1]
            mask = self._rows(sub.loss_masks, width) * rmask if sub.loss_masks else rmask
            loss, stats = policy_loss(
                logp, self._rows(sub.old_logprobs, width), torch.tensor(sub.advantages, device=self.device), mask,
                loss_obj.cfg, ref_logp=self._rows(sub.ref_logprobs, width),
                generator_logp=self._rows(sub.generator_logprobs, width),
                token_normalizer=loss_obj.token_normalizer, seq_normalizer=loss_obj.seq_normalizer)
            self.backend.backward(loss)
            n = float(mask.sum())
            tokens += n
            totals["loss"] += float(loss.detach())
            totals["entropy"] += float((entropy * mask).sum())
            for k in ("clip_fraction", "kl", "ratio_mean"):
                totals[k] += stats[k] * n
        step = self.backend.optimizer_step()
        denom = max(tokens, 1.0)
        return {"loss": totals["loss"], "tokens": tokens, **{k: totals[k] / denom for k in totals if k != "loss"},
                **step}

    # ---- weights out (gathers) and resume state ---------------------------------------
    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Gathered HF-named weights, adapters merged (collective: every rank calls it; rank 0 uses it)."""
        state = self.backend.full_state_dict()
        if self.lora and state:
            state = merged_state_dict(state, self.lora_scaling)
        return state

    def save_hf(self, out_dir: str, shard_bytes: int = 2**30) -> str:
        """The policy as an HF directory (adapters merged) that transformers and vLLM load.
        Collective: weights are gathered one safetensors shard (~`shard_bytes`, whole decoder
        layers) at a time and rank 0 writes each, so no rank holds the full model."""
        if hasattr(self.backend, "engine"):  # DeepSpeed partitions its own way: its gathered dict
            state = self.full_state_dict()
            if self.rank == 0:
                save_hf(base_model(self.backend.model, self.adapter), self.tokenizer, out_dir, state_dict=state)
            return out_dir
        plan = plan_buckets(self.backend.model, shard_bytes, self.lora_scaling)
        out = Path(out_dir)
        weight_map: dict[str, str] = {}
        for i, bucket in enumerate(plan):
            tensors = gather_bucket(self.backend.model, bucket, self.lora_scaling)
            if self.rank == 0:
                name = WEIGHTS if len(plan) == 1 else f"model-{i + 1:05d}-of-{len(plan):05d}.safetensors"
                out.mkdir(parents=True, exist_ok=True)
                save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(out / name),
                          metadata={"format": "pt"})
                weight_map.update(dict.fromkeys(tensors, name))
            del tensors
        if self.rank == 0:
            if len(plan) > 1:
                total = sum(b.nbytes for b in plan)
                (out / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                    indent=2))
            model = base_model(self.backend.model, self.adapter)
            model.config.save_pretrained(str(out))
            if getattr(model, "generation_config", None) is not None:
                model.generation_config.save_pretrained(str(out))
            self.tokenizer.save_pretrained(str(out))
        return out_dir

    def save_state(self, directory: str) -> None:
        from core.seed import rng_state

        Path(directory).mkdir(parents=True, exist_ok=True)
        self.backend.save_state(directory)
        torch.save(rng_state(), Path(directory) / f"rng_rank{self.rank}.pt")

    def load_state(self, directory: str) -> None:
        from core.seed import set_rng_state

        self.backend.load_state(directory)
        path = Path(directory) / f"rng_rank{self.rank}.pt"
        if path.exists():
            set_rng_state(torch.load(path, weights_only=False))
