"""Parent activations per layer on calibration data: what BLD trains against, what the
FFN channel-contribution pruning averages over, and where replace-1-block scoring
starts (so only the swapped block and the layers after it are recomputed)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nas.decilm.modeling_decilm import DeciLMForCausalLM, causal_mask, rope_cos_sin


@dataclass
class LayerContext:
    """What a layer needs to run outside the model: RoPE tables and the additive mask."""

    cos: torch.Tensor
    sin: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def build(cls, model: DeciLMForCausalLM, attention_mask: torch.Tensor) -> "LayerContext":
        b, t = attention_mask.shape
        pos = torch.arange(t)[None].expand(b, t)
        cos, sin = rope_cos_sin(model.config, pos, torch.float32)
        return cls(cos, sin, causal_mask(attention_mask, t, t, b, torch.float32, "cpu"))

    def slice(self, rows: slice) -> "LayerContext":
        return LayerContext(self.cos[rows], self.sin[rows], self.mask[rows])


@torch.no_grad()
def layer_inputs(model: DeciLMForCausalLM, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """Residual stream entering each layer, plus the stream after the last layer (pre-norm)."""
    ctx = LayerContext.build(model, attention_mask)
    x = model.model.embed_tokens(input_ids)
    out = [x]
    for layer in model.model.layers:
        x = layer(x, ctx.cos, ctx.sin, ctx.mask)
        out.append(x)
    return out


@torch.no_grad()
def ffn_channel_contribution(model: DeciLMForCausalLM, layer: int, x_in: torch.Tensor, ctx: LayerContext,
                             attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of |X_i| * ||W_down[:, i]|| (METHODS §2.2) for one parent FFN."""
    blk = model.model.layers[layer]
    mid = x_in + blk.attn_delta(x_in, ctx.cos, ctx.sin, ctx.mask)
    h = blk.post_attention_layernorm(mid)
    act = torch.nn.functional.silu(blk.mlp.gate_proj(h)) * blk.mlp.up_proj(h)  # (B, T, I)
    keep = attention_mask.bool()
    mean_abs = act[keep].abs().mean(0)
    return mean_abs * blk.mlp.down_proj.weight.norm(dim=0)


def calibrate(model: DeciLMForCausalLM, batch, path) -> dict:
    """Save layer inputs, the mask and each layer's FFN channel contributions to `path`."""
    inputs = layer_inputs(model, batch.input_ids, batch.attention_mask)
    ctx = LayerContext.build(model, batch.attention_mask)
    contributions = {i: ffn_channel_contribution(model, i, inputs[i], ctx, batch.attention_mask)
                     for i, layer in enumerate(model.model.layers) if layer.mlp is not None}
    calib = {"layer_inputs": inputs, "attention_mask": batch.attention_mask, "contributions": contributions}
    torch.save(calib, path)
    return calib
