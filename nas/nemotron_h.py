"""Structured pruning of NemotronH (Mamba-2 + attention + FFN blocks) checkpoints:
the Minitron-SSM child built from kept indices, and its parameter count by formula.

Layout of one HF Mamba-2 mixer (d_inner I = heads x head_dim, G groups, state N):
`in_proj` rows `[z (I) | x (I) | B (G N) | C (G N) | dt (heads)]`, conv channels
`[x | B | C]`, per-head `dt_bias`, `A_log`, `D`, a gated RMSNorm over d_inner applied per
group (I / G channels each), `out_proj` columns over d_inner. Head h belongs to group
h // (heads / G) and reads that group's B and C. So heads may be reordered or dropped only
within their group, every group keeping the same count (vLLM also needs equal heads per
group and the same Mamba sizes in every layer); B, C and the state size stay untouched.
Head channels (head_dim) are pruned with the same channel indices in every head of a layer.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from transformers import NemotronHConfig, NemotronHForCausalLM

MAMBA, ATTENTION, MLP = "linear_attention", "full_attention", "mlp"


@dataclass(frozen=True)
class PruneSpec:
    """Target sizes of a Minitron-SSM child; a field left None keeps the parent's size."""

    hidden_size: int | None = None
    mamba_num_heads: int | None = None  # a multiple of n_groups
    mamba_head_dim: int | None = None
    intermediate_size: int | None = None  # FFN neurons
    drop_layers: tuple[int, ...] = ()  # parent block indices removed (depth pruning)

    def resolve(self, cfg: NemotronHConfig) -> "PruneSpec":
        spec = PruneSpec(self.hidden_size or cfg.hidden_size, self.mamba_num_heads or cfg.mamba_num_heads,
                         self.mamba_head_dim or cfg.mamba_head_dim, self.intermediate_size or cfg.intermediate_size,
                         tuple(sorted(set(self.drop_layers))))
        if spec.mamba_num_heads % cfg.n_groups:
            raise ValueError(f"mamba_num_heads {spec.mamba_num_heads} is not a multiple of n_groups {cfg.n_groups}")
        for name in ("hidden_size", "mamba_num_heads", "mamba_head_dim", "intermediate_size"):
            if not 0 < getattr(spec, name) <= getattr(cfg, name):
                raise ValueError(f"{name} {getattr(spec, name)} must be in 1..{getattr(cfg, name)}")
        if any(not 0 <= i < cfg.num_hidden_layers for i in spec.drop_layers):
            raise ValueError(f"drop_layers {spec.drop_layers} outside 0..{cfg.num_hidden_layers - 1}")
        return spec


@dataclass
class KeptIndices:
    """What survives, as indices into the parent (sorted unless a test permutes them)."""

    hidden: torch.Tensor  # embedding channels
    mamba_heads: dict[int, torch.Tensor] = field(default_factory=dict)  # per parent layer, group-major
    mamba_channels: dict[int, torch.Tensor] = field(default_factory=dict)  # per parent layer, within a head
    ffn: dict[int, torch.Tensor] = field(default_factory=dict)  # per parent layer
    layers: list[int] = field(default_factory=list)  # parent layers kept, in order


def child_config(cfg: NemotronHConfig, spec: PruneSpec) -> NemotronHConfig:
    spec = spec.resolve(cfg)
    new = copy.deepcopy(cfg)
    new.hidden_size, new.mamba_num_heads = spec.hidden_size, spec.mamba_num_heads
    new.mamba_head_dim, new.intermediate_size = spec.mamba_head_dim, spec.intermediate_size
    new.layers_block_type = [t for i, t in enumerate(cfg.layers_block_type) if i not in spec.drop_layers]
    return new


def block_parameter_count(cfg: NemotronHConfig, kind: str) -> int:
    """Parameters of one block of `kind`, its pre-norm included, by formula."""
    h = cfg.hidden_size
    inner, gn, heads = cfg.mamba_num_heads * cfg.mamba_head_dim, cfg.n_groups * cfg.ssm_state_size, cfg.mamba_num_heads
    if kind == MAMBA:
        conv = inner + 2 * gn
        return h + h * (2 * inner + 2 * gn + heads) + conv * (cfg.conv_kernel + int(cfg.use_conv_bias)) \
            + 3 * heads + inner + inner * h
    if kind == ATTENTION:
        return h + h * cfg.head_dim * (2 * cfg.num_attention_heads + 2 * cfg.num_key_value_heads)
    if kind == MLP:
        return h + 2 * h * cfg.intermediate_size
    raise NotImplementedError(f"block type {kind!r} (only Mamba-2, attention and dense FFN are pruned)")


def fixed_parameter_count(cfg: NemotronHConfig) -> int:
    """Embeddings, LM head and final norm: the parameters outside the blocks."""
    return cfg.vocab_size * cfg.hidden_size * (1 if cfg.tie_word_embeddings else 2) + cfg.hidden_size


def parameter_count(cfg: NemotronHConfig) -> int:
    """Parameters of a NemotronH model (dense blocks), by formula."""
    return fixed_parameter_count(cfg) + sum(block_parameter_count(cfg, t) for t in cfg.layers_block_type)


def group_topk(head_scores: torch.Tensor, n_groups: int, keep: int) -> torch.Tensor:
    """Top `keep / n_groups` heads of every group by score, group-major, original order
    within the group (any order within a group computes the same function)."""
    heads = head_scores.numel()
    per, k = heads // n_groups, keep // n_groups
    out = []
    for g in range(n_groups):
        s = head_scores[g * per:(g + 1) * per]
        out.append(g * per + torch.topk(s, k).indices.sort().values)
    return torch.cat(out)


def _mamba_weights(sd: dict[str, torch.Tensor], pre: str, cfg: NemotronHConfig, heads: torch.Tensor,
                   chans: torch.Tensor, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
    inner, p, gn = cfg.mamba_num_heads * cfg.mamba_head_dim, cfg.mamba_head_dim, cfg.n_groups * cfg.ssm_state_size
    x_idx = (heads[:, None] * p + chans[None, :]).reshape(-1)  # kept d_inner channels, head-major
    bc = torch.arange(2 * gn)
    rows = torch.cat([x_idx, inner + x_idx, 2 * inner + bc, 2 * inner + 2 * gn + heads])
    conv = torch.cat([x_idx, inner + bc])
    out = {pre + "in_proj.weight": sd[pre + "in_proj.weight"][rows][:, hidden],
           pre + "conv1d.weight": sd[pre + "conv1d.weight"][conv],
           pre + "norm.weight": sd[pre + "norm.weight"][x_idx],
           pre + "out_proj.weight": sd[pre + "out_proj.weight"][hidden][:, x_idx]}
    for name in ("dt_bias", "A_log", "D"):
        out[pre + name] = sd[pre + name][heads]
    if pre + "conv1d.bias" in sd:
        out[pre + "conv1d.bias"] = sd[pre + "conv1d.bias"][conv]
    for name in ("in_proj.bias", "out_proj.bias"):
        if pre + name in sd:
            raise NotImplementedError("Mamba projections with bias")
    return out


def prune(model: NemotronHForCausalLM, spec: PruneSpec, kept: KeptIndices) -> NemotronHForCausalLM:
    """The child holding the parent's weights at `kept`; sizes from `spec`."""
    cfg = model.config
    new_cfg = child_config(cfg, spec)
    sd = model.state_dict()
    hid = kept.hidden
    if len(hid) != new_cfg.hidden_size or len(kept.layers) != new_cfg.num_hidden_layers:
        raise ValueError(f"kept indices ({len(hid)} channels, {len(kept.layers)} layers) do not match the spec")
    out = {"model.embeddings.weight": sd["model.embeddings.weight"][:, hid],
           "model.norm_f.weight": sd["model.norm_f.weight"][hid], "lm_head.weight": sd["lm_head.weight"][:, hid]}
    for new_i, i in enumerate(kept.layers):
        src, dst = f"model.layers.{i}.", f"model.layers.{new_i}."
        block = {src + "norm.weight": sd[src + "norm.weight"][hid]}
        kind = cfg.layers_block_type[i]
        if kind == MAMBA:
            heads, chans = kept.mamba_heads[i], kept.mamba_channels[i]
            if len(heads) != new_cfg.mamba_num_heads or len(chans) != new_cfg.mamba_head_dim:
                raise ValueError(f"layer {i}: kept heads/channels do not match the spec")
            block.update(_mamba_weights(sd, src + "mixer.", cfg, heads, chans, hid))
        elif kind == ATTENTION:
            m = src + "mixer."
            block.update({m + f"{n}_proj.weight": sd[m + f"{n}_proj.weight"][:, hid] for n in "qkv"})
            block[m + "o_proj.weight"] = sd[m + "o_proj.weight"][hid]
        elif kind == MLP:
            m, f = src + "mixer.", kept.ffn[i]
            if len(f) != new_cfg.intermediate_size:
                raise ValueError(f"layer {i}: kept FFN neurons do not match the spec")
            block[m + "up_proj.weight"] = sd[m + "up_proj.weight"][f][:, hid]
            block[m + "down_proj.weight"] = sd[m + "down_proj.weight"][hid][:, f]
        else:
            raise NotImplementedError(f"layer {i}: block type {kind!r}")
        out.update({dst + k[len(src):]: v.clone() for k, v in block.items()})
    child = NemotronHForCausalLM(new_cfg)
    child.load_state_dict(out, strict=True)
    child.generation_config = copy.deepcopy(model.generation_config)
    return child.to(next(model.parameters()).dtype).eval()
