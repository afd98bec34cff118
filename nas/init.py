"""Training-free initialisation of child sub-blocks from the parent (METHODS §2.2).

Each function returns the weights of one sub-block as a state-dict fragment named
relative to its decoder layer (`input_layernorm.weight`, `self_attn.k_proj.weight`, ...),
so BLD can train it and assembly can drop it into any layer.
"""
from __future__ import annotations

import torch

from nas.decilm.modeling_decilm import DeciLMDecoderLayer
from nas.space import GQA, LINEAR, NO_OP, SWIGLU, AttentionVariant, FFNVariant


def _attn_params(layer: DeciLMDecoderLayer) -> dict[str, torch.Tensor]:
    return {"input_layernorm.weight": layer.input_layernorm.weight.detach().clone(),
            **{f"self_attn.{k}": v.detach().clone() for k, v in layer.self_attn.state_dict().items()}}


def mean_pool_kv(weight: torch.Tensor, kv_heads: int, new_kv_heads: int, head_dim: int) -> torch.Tensor:
    """K/V projection with fewer heads: average consecutive heads within each new group,
    matching the query-head -> KV-head mapping `h // (H / kv)` (GQA up-training init)."""
    w = weight.view(kv_heads, head_dim, -1)
    return w.view(new_kv_heads, kv_heads // new_kv_heads, head_dim, -1).mean(1).reshape(new_kv_heads * head_dim, -1)


def init_attention(parent_layer: DeciLMDecoderLayer, variant: AttentionVariant) -> dict[str, torch.Tensor]:
    attn = parent_layer.self_attn
    p = _attn_params(parent_layer)
    if variant.kind == NO_OP:
        return {}
    if variant.kind == GQA:
        for name in ("k_proj", "v_proj"):
            p[f"self_attn.{name}.weight"] = mean_pool_kv(p[f"self_attn.{name}.weight"], attn.num_kv_heads,
                                                         variant.kv_heads, attn.head_dim)
        return p
    if variant.kind == LINEAR:  # each token attends only to itself: W = W_o . W_v (per query head)
        rep = attn.num_heads // attn.num_kv_heads
        v = attn.v_proj.weight.detach().view(attn.num_kv_heads, attn.head_dim, -1).repeat_interleave(rep, 0)
        w = attn.o_proj.weight.detach() @ v.reshape(attn.num_heads * attn.head_dim, -1)
        return {"input_layernorm.weight": p["input_layernorm.weight"], "self_attn.linear_attn.weight": w}
    raise ValueError(f"unknown attention variant {variant}")


def init_ffn(parent_layer: DeciLMDecoderLayer, variant: FFNVariant,
             contribution: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Pruned FFN keeps the channels with the largest calibration contribution (in their
    original order); without calibration the down-projection column norm ranks them."""
    mlp = parent_layer.mlp
    norm = {"post_attention_layernorm.weight": parent_layer.post_attention_layernorm.weight.detach().clone()}
    if variant.kind == NO_OP:
        return {}
    if variant.kind == LINEAR:  # ignore the gate: W = W_down . W_up
        return {**norm, "mlp.linear_mlp.weight": mlp.down_proj.weight.detach() @ mlp.up_proj.weight.detach()}
    if variant.kind == SWIGLU:
        score = contribution if contribution is not None else mlp.down_proj.weight.norm(dim=0)
        keep = torch.topk(score, variant.width).indices.sort().values
        return {**norm, "mlp.gate_proj.weight": mlp.gate_proj.weight.detach()[keep].clone(),
                "mlp.up_proj.weight": mlp.up_proj.weight.detach()[keep].clone(),
                "mlp.down_proj.weight": mlp.down_proj.weight.detach()[:, keep].clone()}
    raise ValueError(f"unknown FFN variant {variant}")
