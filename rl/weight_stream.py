"""The policy's weights, one bucket at a time, as the engines load them.

A bucket is a run of whole decoder layers (plus the embeddings, final norm and head, each
its own group) of about `bucket_bytes`: an engine that loads a bucket completes every
layer it touches (vLLM fuses q/k/v and gate/up), and no side ever holds more than one
bucket of gathered weights. Under FSDP2 every rank calls `gather_bucket` for the same
bucket in the same order (each DTensor's `full_tensor()` is an all-gather); a plain module
needs no collective. LoRA policies send merged weights under the plain HF names.
Imports torch only, like the policy worker.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from core.engines.weight_group import TensorSpec, spec_of
from rl.lora import PEFT_PREFIX, merged_state_dict

_LAYER = re.compile(r"^(.*?\blayers\.\d+)\.")


@dataclass(frozen=True)
class Bucket:
    sources: tuple[str, ...]  # the policy module's own state-dict names gathered for it
    specs: tuple[TensorSpec, ...]  # what the engines receive (HF names, merged LoRA)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.specs)


def group_key(name: str) -> str:
    """Names of one decoder layer share a key; every other weight is its own group."""
    m = _LAYER.match(name.removeprefix(PEFT_PREFIX))
    return m.group(1) if m else name.removeprefix(PEFT_PREFIX).replace(".base_layer.", ".")


def _local_meta(t: torch.Tensor) -> torch.Tensor:
    """A meta tensor with the full (global) shape and dtype, gathering nothing."""
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


def plan_buckets(model: nn.Module, bucket_bytes: int, lora_scaling: float | None = None) -> list[Bucket]:
    """Buckets in state-dict order; every rank computes the same plan without communicating."""
    state = model.state_dict()
    groups: dict[str, list[str]] = {}
    for name in state:
        groups.setdefault(group_key(name), []).append(name)
    buckets, sources, specs, size = [], [], [], 0
    for names in groups.values():
        meta = {n: _local_meta(state[n]) for n in names}
        out = merged_state_dict(meta, lora_scaling) if lora_scaling is not None else meta
        group_specs = [spec_of(n, t) for n, t in out.items()]
        group_bytes = sum(s.nbytes for s in group_specs)
        if sources and size + group_bytes > bucket_bytes:
            buckets.append(Bucket(tuple(sources), tuple(specs)))
            sources, specs, size = [], [], 0
        sources += names
        specs += group_specs
        size += group_bytes
    if sources:
        buckets.append(Bucket(tuple(sources), tuple(specs)))
    return buckets


@torch.no_grad()
def gather_bucket(model: nn.Module, bucket: Bucket, lora_scaling: float | None = None) -> dict[str, torch.Tensor]:
    """The bucket's full tensors under their HF names (collective under FSDP2: every rank calls it)."""
    state = model.state_dict()
    full = {}
    for name in bucket.sources:
        t = state[name]
        full[name] = (t.full_tensor() if hasattr(t, "full_tensor") else t).detach()
    out = merged_state_dict(full, lora_scaling) if lora_scaling is not None else full
    return {s.name: out[s.name] for s in bucket.specs}
