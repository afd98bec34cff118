"""Minitron-SSM importance from activations only (NVIDIA Model-Optimizer's Minitron
pruning): per sample, mean |a| over its real tokens; then L2 over samples.

- Mamba head channels: the x part of `in_proj`'s output (rows I..2I); a head's score is
  the L2 norm of its channels' scores, and heads are ranked within their group.
- FFN neurons: the input of `down_proj`.
- Embedding channels: every block's normed input (its pre-norm output), summed over blocks.
- Layers (depth): normalised MSE of the logits when the layer is removed. (1 - cos(in, out)
  of a block always favours dropping the last layers, so it is not used.)
Padding never counts: the per-sample mean runs over attention_mask == 1 only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nas.nemotron_h import ATTENTION, MAMBA, MLP, KeptIndices, PruneSpec, group_topk


@dataclass
class Importance:
    mamba_channels: dict[int, torch.Tensor] = field(default_factory=dict)  # per layer, (heads * head_dim,)
    ffn: dict[int, torch.Tensor] = field(default_factory=dict)  # per layer, (intermediate,)
    hidden: torch.Tensor | None = None  # (hidden,)
    layers: dict[int, float] = field(default_factory=dict)  # logit NMSE when the layer is removed

    def mamba_heads(self, layer: int, head_dim: int) -> torch.Tensor:
        return self.mamba_channels[layer].view(-1, head_dim).norm(dim=1)

    def head_channels(self, layer: int, head_dim: int) -> torch.Tensor:
        """Channel-within-head scores, aggregated (L2) over the layer's heads."""
        return self.mamba_channels[layer].view(-1, head_dim).norm(dim=0)


class _Accumulator:
    """Sum over samples of (per-sample mean |a| over real tokens)^2; sqrt at the end."""

    def __init__(self):
        self.sq: dict[str, torch.Tensor] = {}

    def add(self, name: str, act: torch.Tensor, mask: torch.Tensor) -> None:
        m = mask.to(act.dtype)[..., None]  # (B, T, 1)
        per_sample = (act.abs() * m).sum(1) / m.sum(1).clamp_min(1)  # (B, C)
        sq = per_sample.double().pow(2).sum(0)
        self.sq[name] = self.sq.get(name, 0) + sq

    def result(self, name: str) -> torch.Tensor:
        return self.sq[name].sqrt().float()


@torch.no_grad()
def collect_importance(model, batches) -> Importance:
    """Width importance over calibration `batches` (objects with input_ids, attention_mask)."""
    cfg = model.config
    inner = cfg.mamba_num_heads * cfg.mamba_head_dim
    acc, hooks, current = _Accumulator(), [], {}
    for i, block in enumerate(model.model.layers):
        hooks.append(block.norm.register_forward_hook(
            lambda mod, args, out, i=i: acc.add("hidden", out, current["mask"])))
        kind = cfg.layers_block_type[i]
        if kind == MAMBA:
            hooks.append(block.mixer.in_proj.register_forward_hook(
                lambda mod, args, out, i=i: acc.add(f"mamba{i}", out[..., inner:2 * inner], current["mask"])))
        elif kind == MLP:
            hooks.append(block.mixer.down_proj.register_forward_pre_hook(
                lambda mod, args, i=i: acc.add(f"ffn{i}", args[0], current["mask"])))
    run_hooked(model, batches, hooks, current)
    imp = Importance(hidden=acc.result("hidden"))
    for i, kind in enumerate(cfg.layers_block_type):
        if kind == MAMBA:
            imp.mamba_channels[i] = acc.result(f"mamba{i}")
        elif kind == MLP:
            imp.ffn[i] = acc.result(f"ffn{i}")
    return imp


def masked_nmse(a: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> float:
    keep = mask.bool()
    return float((a[keep] - ref[keep]).pow(2).mean() / ref[keep].pow(2).mean().clamp_min(1e-12))


@torch.no_grad()
def layer_removal_scores(model, batch) -> dict[int, float]:
    """Per block: normalised MSE between the logits without it and the full model's."""
    layers = model.model.layers
    ref = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    scores = {}
    try:
        for i in range(len(layers)):
            model.model.layers = torch.nn.ModuleList([b for j, b in enumerate(layers) if j != i])
            out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
            scores[i] = masked_nmse(out, ref, batch.attention_mask)
    finally:
        model.model.layers = layers
    return scores


def kept_indices(cfg, imp: Importance, spec: PruneSpec) -> KeptIndices:
    """Top-scored channels / neurons / heads (heads within their groups) and the layers
    whose removal hurts most; everything in the parent's order."""
    spec = spec.resolve(cfg)
    top = lambda s, k: torch.topk(s, k).indices.sort().values  # noqa: E731
    kept = KeptIndices(hidden=top(imp.hidden, spec.hidden_size),
                       layers=[i for i in range(cfg.num_hidden_layers) if i not in spec.drop_layers])
    for i in kept.layers:
        if cfg.layers_block_type[i] == MAMBA:
            kept.mamba_heads[i] = group_topk(imp.mamba_heads(i, cfg.mamba_head_dim), cfg.n_groups,
                                             spec.mamba_num_heads)
            kept.mamba_channels[i] = top(imp.head_channels(i, cfg.mamba_head_dim), spec.mamba_head_dim)
        elif cfg.layers_block_type[i] == MLP:
            kept.ffn[i] = top(imp.ffn[i], spec.intermediate_size)
    return kept


def layers_to_drop(cfg, scores: dict[int, float], n: int,
                   keep_types: tuple[str, ...] = (ATTENTION,)) -> tuple[int, ...]:
    """The `n` least important blocks by removal NMSE; block types in `keep_types` are never
    dropped (the tiny parent has only two attention blocks)."""
    order = sorted((s, i) for i, s in scores.items() if cfg.layers_block_type[i] not in keep_types)
    return tuple(sorted(i for _, i in order[:n]))


def random_importance(cfg, seed: int) -> Importance:
    """Random scores of the same shapes: the baseline a random-pruned child is built from."""
    g = torch.Generator().manual_seed(seed)
    inner = cfg.mamba_num_heads * cfg.mamba_head_dim
    imp = Importance(hidden=torch.rand(cfg.hidden_size, generator=g))
    for i, kind in enumerate(cfg.layers_block_type):
        if kind == MAMBA:
            imp.mamba_channels[i] = torch.rand(inner, generator=g)
        elif kind == MLP:
            imp.ffn[i] = torch.rand(cfg.intermediate_size, generator=g)
    return imp


@torch.no_grad()
def run_hooked(model, batches, hooks: list, current: dict) -> None:
    """Forward every batch in eval mode with `current["mask"]` set for the hooks, then remove
    them and restore the model's mode (shared by the NemotronH and FalconH1 importance passes)."""
    was_training = model.training
    model.eval()
    try:
        for b in batches:
            current["mask"] = b.attention_mask
            model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
