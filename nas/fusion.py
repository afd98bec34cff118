"""FFN Fusion (METHODS §1.2): a run of consecutive attention-free blocks
h_{k+1} = h_k + FFN_k(norm_k(h_k)) becomes one wide FFN applied in parallel,
h_out = h_1 + sum_k FFN_k(norm_k(h_1)).

The wide FFN stacks the gate/up rows and concatenates the down columns, so it computes
the parallel sum exactly. When the run's norm weights agree it keeps that norm; otherwise
each norm's weight is folded into its own gate/up rows (RMSNorm is gamma * x / rms(x) and
the gate/up maps are linear), which keeps the parallel sum exact. What fusion does change
is sequential -> parallel: the report measures that error on data. The fused block sits in
the run's first layer; the rest become identity placeholders (attention and FFN no-op),
as in the released LN-Ultra config.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from nas.decilm.configuration_decilm import AttentionConfig, BlockConfig, FFNConfig, intermediate_size_to_ffn_mult
from nas.decilm.modeling_decilm import DeciLMForCausalLM


@dataclass
class FusionReport:
    start: int
    end: int  # exclusive
    fused_width: int
    norms_agree: bool
    parallel_max_abs_err: float  # fused FFN vs sum_k FFN_k(norm_k(x)) on the data: ~float eps
    hidden_rel_err: float  # final hidden state, fused model vs original (sequential -> parallel)
    kl_div: float  # KL(original || fused) per token


def attention_free_runs(model: DeciLMForCausalLM, min_len: int = 2) -> list[tuple[int, int]]:
    """Maximal runs of layers with no-op attention and a real SwiGLU FFN."""
    runs, start = [], None
    blocks = model.config.block_configs
    for i, b in enumerate(blocks + [None]):
        ok = b is not None and b.attention.no_op and not b.ffn.no_op and not b.ffn.replace_with_linear
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            if i - start >= min_len:
                runs.append((start, i))
            start = None
    return runs


def fuse_ffn_run(model: DeciLMForCausalLM, start: int, end: int) -> tuple[DeciLMForCausalLM, bool]:
    """A new model with layers [start, end) fused; returns (model, norms_agree)."""
    layers = model.model.layers[start:end]
    if any(layer.self_attn is not None or layer.mlp is None for layer in layers):
        raise ValueError(f"layers {start}..{end - 1} are not all attention-free FFN blocks")
    gammas = [layer.post_attention_layernorm.weight.detach() for layer in layers]
    agree = all(torch.equal(g, gammas[0]) for g in gammas)
    fold = [torch.ones_like(g) if agree else g for g in gammas]
    gate = torch.cat([l.mlp.gate_proj.weight.detach() * f[None] for l, f in zip(layers, fold)])
    up = torch.cat([l.mlp.up_proj.weight.detach() * f[None] for l, f in zip(layers, fold)])
    down = torch.cat([l.mlp.down_proj.weight.detach() for l in layers], dim=1)
    cfg = copy.deepcopy(model.config)
    cfg.block_configs = list(cfg.block_configs)
    cfg.block_configs[start] = BlockConfig(AttentionConfig(no_op=True), FFNConfig(
        ffn_mult=intermediate_size_to_ffn_mult(gate.shape[0], cfg.hidden_size)))
    for i in range(start + 1, end):
        cfg.block_configs[i] = BlockConfig(AttentionConfig(no_op=True), FFNConfig(no_op=True))
    fused = DeciLMForCausalLM(cfg)
    sd = {k: v for k, v in model.state_dict().items()
          if not any(k.startswith(f"model.layers.{i}.") for i in range(start, end))}
    pre = f"model.layers.{start}."
    sd.update({pre + "post_attention_layernorm.weight": gammas[0].clone() if agree else torch.ones_like(gammas[0]),
               pre + "mlp.gate_proj.weight": gate, pre + "mlp.up_proj.weight": up, pre + "mlp.down_proj.weight": down})
    fused.load_state_dict(sd, strict=True)
    fused.generation_config = copy.deepcopy(model.generation_config)
    return fused.eval(), agree


@torch.no_grad()
def fuse_and_report(model: DeciLMForCausalLM, start: int, end: int, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> tuple[DeciLMForCausalLM, FusionReport]:
    from nas.activations import LayerContext, layer_inputs
    from sft.distill import forward_kl

    fused, agree = fuse_ffn_run(model, start, end)
    x1 = layer_inputs(model, input_ids, attention_mask)[start]
    parallel = x1 + sum(l.ffn_delta(x1) for l in model.model.layers[start:end])
    ctx = LayerContext.build(model, attention_mask)
    keep = attention_mask.bool()
    par_err = float((fused.model.layers[start](x1, ctx.cos, ctx.sin, ctx.mask) - parallel)[keep].abs().max())
    a = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    b = fused(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    ha, hb = a.hidden_states[-1][keep], b.hidden_states[-1][keep]
    rel = float((ha - hb).norm() / ha.norm())
    report = FusionReport(start, end, fused.config.ffn_intermediate_size(start), agree, par_err, rel,
                          float(forward_kl(b.logits, a.logits, attention_mask)))
    return fused, report


def fuse_all_runs(model: DeciLMForCausalLM, input_ids: torch.Tensor, attention_mask: torch.Tensor
                  ) -> tuple[DeciLMForCausalLM, list[FusionReport]]:
    """Fuse every maximal attention-free run, one after another (placeholders keep the
    layer count, so the later runs' indices stay valid). Each report compares against the
    model before that fusion."""
    reports = []
    for s, e in attention_free_runs(model):
        model, rep = fuse_and_report(model, s, e, input_ids, attention_mask)
        reports.append(rep)
    return model, reports
