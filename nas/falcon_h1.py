"""Minitron-SSM pruning of FalconH1, the parallel-head hybrid (Hymba design): every block
runs attention and a Mamba-2 mixer side by side on the same normed input, sums them (with
muP multipliers), then a SwiGLU FFN.

What this prunes, and why only that:
- Mamba heads (within their group, every group keeping the same count) and head channels:
  the mixer's layout is NemotronH's (`in_proj` rows `[z | x | B | C | dt]`, conv channels
  `[x | B | C]`, per-head `dt_bias`/`A_log`/`D`, gated norm per group), so the slicing is
  `nas.nemotron_h`'s. The per-section muP vector is rebuilt by the child from its config.
- FFN neurons (gate/up rows, down columns), scored by `down_proj`'s input.
- Whole blocks (depth), scored by the logit NMSE when the block is removed.
Not pruned: the hidden size (the attention head dim defaults to hidden / heads, so cutting
embedding channels would change every head's size; a checkpoint must carry `head_dim`
for that), and the attention heads running in parallel with the Mamba heads.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from transformers import FalconH1Config, FalconH1ForCausalLM

from nas.nemotron_h import group_topk
from nas.ssm_importance import _Accumulator, run_hooked


@dataclass(frozen=True)
class FalconPruneSpec:
    """Target sizes; None keeps the parent's."""

    mamba_n_heads: int | None = None  # a multiple of mamba_n_groups
    mamba_d_head: int | None = None
    intermediate_size: int | None = None
    drop_layers: tuple[int, ...] = ()


def _head_dim(cfg: FalconH1Config) -> int:
    return cfg.mamba_d_ssm // cfg.mamba_n_heads


def child_config(cfg: FalconH1Config, spec: FalconPruneSpec) -> FalconH1Config:
    heads = spec.mamba_n_heads or cfg.mamba_n_heads
    hd = spec.mamba_d_head or _head_dim(cfg)
    if heads % cfg.mamba_n_groups or not 0 < heads <= cfg.mamba_n_heads or not 0 < hd <= _head_dim(cfg):
        raise ValueError(f"mamba_n_heads {heads} / mamba_d_head {hd}: heads must be a multiple of "
                         f"{cfg.mamba_n_groups} and neither may exceed the parent's")
    if any(not 0 <= i < cfg.num_hidden_layers for i in spec.drop_layers):
        raise ValueError(f"drop_layers {spec.drop_layers} outside 0..{cfg.num_hidden_layers - 1}")
    new = copy.deepcopy(cfg)
    new.mamba_n_heads, new.mamba_d_head, new.mamba_d_ssm = heads, hd, heads * hd
    new.intermediate_size = spec.intermediate_size or cfg.intermediate_size
    new.num_hidden_layers = cfg.num_hidden_layers - len(set(spec.drop_layers))
    return new


@dataclass
class FalconImportance:
    mamba_channels: dict[int, torch.Tensor] = field(default_factory=dict)  # per layer, (heads * head_dim,)
    ffn: dict[int, torch.Tensor] = field(default_factory=dict)


@torch.no_grad()
def collect_importance(model, batches) -> FalconImportance:
    """Per sample mean |a| over real tokens, L2 over samples: Mamba x channels from
    `in_proj`'s output, FFN neurons from `down_proj`'s input."""
    cfg = model.config
    inner = cfg.mamba_d_ssm
    acc, hooks, current = _Accumulator(), [], {}
    for i, block in enumerate(model.model.layers):
        hooks.append(block.mamba.in_proj.register_forward_hook(
            lambda mod, args, out, i=i: acc.add(f"mamba{i}", out[..., inner:2 * inner], current["mask"])))
        hooks.append(block.feed_forward.down_proj.register_forward_pre_hook(
            lambda mod, args, i=i: acc.add(f"ffn{i}", args[0], current["mask"])))
    run_hooked(model, batches, hooks, current)
    n = cfg.num_hidden_layers
    return FalconImportance({i: acc.result(f"mamba{i}") for i in range(n)}, {i: acc.result(f"ffn{i}") for i in range(n)})


def prune(model: FalconH1ForCausalLM, spec: FalconPruneSpec, imp: FalconImportance) -> FalconH1ForCausalLM:
    """The child keeping the top heads (within groups), channels and neurons by `imp`."""
    cfg, new_cfg = model.config, child_config(model.config, spec)
    p, g, gn = _head_dim(cfg), cfg.mamba_n_groups, cfg.mamba_n_groups * cfg.mamba_d_state
    inner = cfg.mamba_d_ssm
    top = lambda s, k: torch.topk(s, k).indices.sort().values  # noqa: E731
    sd = model.state_dict()
    keep = [i for i in range(cfg.num_hidden_layers) if i not in spec.drop_layers]
    out = {k: v for k, v in sd.items() if not k.startswith("model.layers.")}
    for new_i, i in enumerate(keep):
        src, dst = f"model.layers.{i}.", f"model.layers.{new_i}."
        block = {k: v for k, v in sd.items() if k.startswith(src) and ".mamba." not in k
                 and ".feed_forward." not in k}
        scores = imp.mamba_channels[i].view(-1, p)
        heads = group_topk(scores.norm(dim=1), g, new_cfg.mamba_n_heads)
        chans = top(scores.norm(dim=0), new_cfg.mamba_d_head)
        x = (heads[:, None] * p + chans[None, :]).reshape(-1)
        m = src + "mamba."
        rows = torch.cat([x, inner + x, 2 * inner + torch.arange(2 * gn), 2 * inner + 2 * gn + heads])
        conv = torch.cat([x, inner + torch.arange(2 * gn)])
        block[m + "in_proj.weight"] = sd[m + "in_proj.weight"][rows]
        block[m + "conv1d.weight"] = sd[m + "conv1d.weight"][conv]
        if m + "conv1d.bias" in sd:
            block[m + "conv1d.bias"] = sd[m + "conv1d.bias"][conv]
        if m + "norm.weight" in sd:
            block[m + "norm.weight"] = sd[m + "norm.weight"][x]
        block[m + "out_proj.weight"] = sd[m + "out_proj.weight"][:, x]
        for name in ("dt_bias", "A_log", "D"):
            block[m + name] = sd[m + name][heads]
        for name in ("in_proj.bias", "out_proj.bias"):
            if m + name in sd:
                raise NotImplementedError("Mamba projections with bias")
        f, ff = top(imp.ffn[i], new_cfg.intermediate_size), src + "feed_forward."
        for name in ("gate_proj", "up_proj"):
            block[f"{ff}{name}.weight"] = sd[f"{ff}{name}.weight"][f]
        block[ff + "down_proj.weight"] = sd[ff + "down_proj.weight"][:, f]
        out.update({dst + k[len(src):]: v.clone() for k, v in block.items() if not k.endswith("mup_vector")})
    child = FalconH1ForCausalLM(new_cfg)
    missing, unexpected = child.load_state_dict(out, strict=False)
    if unexpected or any(not k.endswith("mup_vector") for k in missing):
        raise ValueError(f"FalconH1 child weights do not match: missing {missing}, unexpected {unexpected}")
    child.generation_config = copy.deepcopy(model.generation_config)
    return child.to(next(model.parameters()).dtype).eval()


def parameter_count(cfg: FalconH1Config) -> int:
    """Parameters of a FalconH1 model, by formula (no biases in projections)."""
    h, n_heads = cfg.hidden_size, cfg.num_attention_heads
    hd = getattr(cfg, "head_dim", None) or h // n_heads
    inner, gn, heads = cfg.mamba_d_ssm, cfg.mamba_n_groups * cfg.mamba_d_state, cfg.mamba_n_heads
    attention = h * hd * (2 * n_heads + 2 * cfg.num_key_value_heads)
    mamba = h * (2 * inner + 2 * gn + heads) + (inner + 2 * gn) * (cfg.mamba_d_conv + int(cfg.mamba_conv_bias)) \
        + 3 * heads + inner * int(cfg.mamba_rms_norm) + inner * h
    block = 2 * h + attention + mamba + 3 * h * cfg.intermediate_size
    return cfg.vocab_size * h * (1 if cfg.tie_word_embeddings else 2) + h + cfg.num_hidden_layers * block
