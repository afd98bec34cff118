"""Build decoder layers and whole children from per-sub-block weights.

`SubblockStore` answers "weights of attention variant a (or FFN variant f) at layer i":
BLD-trained weights when a finished BLD output exists on disk, the training-free
initialisation otherwise, the parent's own weights for the parent variant. Decoupled BLD
composes a block from its two sub-blocks, which is exactly what `layer_weights` does.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors.torch import load_file

from nas.decilm.configuration_decilm import DeciLMConfig
from nas.decilm.modeling_decilm import DeciLMDecoderLayer, DeciLMForCausalLM
from nas.init import init_attention, init_ffn
from nas.space import NO_OP, AttentionVariant, BlockVariant, FFNVariant, parent_variant


def child_config(parent_cfg: DeciLMConfig, variants: list[BlockVariant]) -> DeciLMConfig:
    cfg = copy.deepcopy(parent_cfg)
    cfg.block_configs = [v.block_config(parent_cfg) for v in variants]
    return cfg


def standalone_layer(parent_cfg: DeciLMConfig, layer: int, variant: BlockVariant) -> DeciLMDecoderLayer:
    cfg = copy.deepcopy(parent_cfg)
    cfg.block_configs = list(cfg.block_configs)
    cfg.block_configs[layer] = variant.block_config(parent_cfg)
    return DeciLMDecoderLayer(cfg, layer)


def variant_slug(v: AttentionVariant | FFNVariant) -> str:
    size = v.kv_heads if isinstance(v, AttentionVariant) else v.width
    return f"{v.kind}{size or ''}"


class SubblockStore:
    def __init__(self, parent: DeciLMForCausalLM, bld_dir: str | Path | None = None,
                 contributions: dict[int, torch.Tensor] | None = None):
        self.parent = parent
        self.bld_dir = Path(bld_dir) if bld_dir else None
        self.contributions = contributions or {}

    def bld_path(self, layer: int, part: str, v: AttentionVariant | FFNVariant) -> Path | None:
        return self.bld_dir / f"layer_{layer}" / f"{part}-{variant_slug(v)}.safetensors" if self.bld_dir else None

    def _trained(self, layer: int, part: str, v) -> dict[str, torch.Tensor] | None:
        path = self.bld_path(layer, part, v)
        if path is None or not path.exists():
            return None
        return {k: v for k, v in load_file(str(path)).items() if not k.startswith("__")}  # "__" keys: BLD losses

    def attention(self, layer: int, v: AttentionVariant) -> dict[str, torch.Tensor]:
        parent_layer = self.parent.model.layers[layer]
        if v == parent_variant(self.parent.config, layer).attention or v.kind == NO_OP:
            return init_attention(parent_layer, v) if v.kind != NO_OP else {}
        return self._trained(layer, "attn", v) or init_attention(parent_layer, v)

    def ffn(self, layer: int, v: FFNVariant) -> dict[str, torch.Tensor]:
        parent_layer = self.parent.model.layers[layer]
        if v.kind == NO_OP:
            return {}
        if v == parent_variant(self.parent.config, layer).ffn:
            return init_ffn(parent_layer, v)
        return self._trained(layer, "ffn", v) or init_ffn(parent_layer, v, self.contributions.get(layer))

    def layer_weights(self, layer: int, v: BlockVariant) -> dict[str, torch.Tensor]:
        return {**self.attention(layer, v.attention), **self.ffn(layer, v.ffn)}

    def build_layer(self, layer: int, v: BlockVariant) -> DeciLMDecoderLayer:
        blk = standalone_layer(self.parent.config, layer, v)
        blk.load_state_dict(self.layer_weights(layer, v), strict=True)
        return blk.eval()


def assemble_child(store: SubblockStore, variants: list[BlockVariant]) -> DeciLMForCausalLM:
    """The heterogeneous child: parent embeddings, final norm and LM head; one block per layer."""
    parent = store.parent
    cfg = child_config(parent.config, variants)
    child = DeciLMForCausalLM(cfg)
    sd = {k: v for k, v in parent.state_dict().items() if not k.startswith("model.layers.")}
    for i, v in enumerate(variants):
        sd.update({f"model.layers.{i}.{k}": w for k, w in store.layer_weights(i, v).items()})
    child.load_state_dict(sd, strict=True)
    child.generation_config = copy.deepcopy(parent.generation_config)
    return child.eval()
