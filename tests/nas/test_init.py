import torch

from nas.activations import LayerContext, ffn_channel_contribution, layer_inputs
from nas.assemble import standalone_layer
from nas.init import init_attention, init_ffn
from nas.space import GQA, LINEAR, SWIGLU, AttentionVariant, BlockVariant, FFNVariant, parent_variant


def _layer_with(parent, i, variant, weights):
    blk = standalone_layer(parent.config, i, variant)
    blk.load_state_dict(weights, strict=True)
    return blk


@torch.no_grad()
def test_kv_mean_pooling_is_exact_when_grouped_heads_agree(parent, batch):
    layer = parent.model.layers[1]
    hd = layer.self_attn.head_dim
    for name in ("k_proj", "v_proj"):  # make KV heads 0 and 1 identical
        w = getattr(layer.self_attn, name).weight
        w[hd:2 * hd] = w[:hd]
    x = layer_inputs(parent, batch.input_ids, batch.attention_mask)[1]
    ctx = LayerContext.build(parent, batch.attention_mask)
    v = BlockVariant(AttentionVariant(GQA, 1), parent_variant(parent.config, 1).ffn)
    pooled = _layer_with(parent, 1, v, {**init_attention(layer, v.attention), **init_ffn(layer, v.ffn)})
    assert pooled.self_attn.k_proj.weight.shape[0] == hd
    assert torch.allclose(pooled(x, ctx.cos, ctx.sin, ctx.mask), layer(x, ctx.cos, ctx.sin, ctx.mask), atol=1e-5)


@torch.no_grad()
def test_linear_attention_init_equals_attention_on_a_single_token(parent):
    """With one token, attention attends only to itself: exactly W_o . W_v."""
    layer = parent.model.layers[2]
    x = torch.randn(3, 1, parent.config.hidden_size)
    ctx = LayerContext.build(parent, torch.ones(3, 1, dtype=torch.long))
    v = BlockVariant(AttentionVariant(LINEAR), parent_variant(parent.config, 2).ffn)
    lin = _layer_with(parent, 2, v, {**init_attention(layer, v.attention), **init_ffn(layer, v.ffn)})
    assert torch.allclose(lin.attn_delta(x, ctx.cos, ctx.sin, ctx.mask),
                          layer.attn_delta(x, ctx.cos, ctx.sin, ctx.mask), atol=1e-5)


@torch.no_grad()
def test_ffn_pruning_keeps_the_contributing_channels(parent, batch):
    layer = parent.model.layers[0]
    layer.mlp.down_proj.weight[:, 256:] = 0.0  # half of the channels contribute nothing
    x = layer_inputs(parent, batch.input_ids, batch.attention_mask)[0]
    ctx = LayerContext.build(parent, batch.attention_mask)
    contrib = ffn_channel_contribution(parent, 0, x, ctx, batch.attention_mask)
    assert torch.all(contrib[256:] == 0) and torch.all(contrib[:256] > 0)
    v = BlockVariant(parent_variant(parent.config, 0).attention, FFNVariant(SWIGLU, 256))
    pruned = _layer_with(parent, 0, v, {**init_attention(layer, v.attention), **init_ffn(layer, v.ffn, contrib)})
    assert torch.allclose(pruned(x, ctx.cos, ctx.sin, ctx.mask), layer(x, ctx.cos, ctx.sin, ctx.mask), atol=1e-5)


@torch.no_grad()
def test_linear_ffn_init_is_down_times_up(parent):
    layer = parent.model.layers[1]
    w = init_ffn(layer, FFNVariant(LINEAR))["mlp.linear_mlp.weight"]
    assert torch.allclose(w, layer.mlp.down_proj.weight @ layer.mlp.up_proj.weight)
