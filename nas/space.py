"""The Puzzle search space: per-layer attention and FFN variants (METHODS §2.1).

A variant is a description, not weights: it knows its DeciLM `block_configs` entry and its
name in the public Puzzle block-library layout ("attention = 4 kv heads (parent * 100%)
&& ffn = intermediate size 1e3 (parent * 100%)").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config classes import transformers; `reforge nas search` stays light without them
    from nas.decilm.configuration_decilm import AttentionConfig, BlockConfig, DeciLMConfig, FFNConfig

GQA, LINEAR, NO_OP, SWIGLU = "gqa", "linear", "no_op", "swiglu"


@dataclass(frozen=True)
class AttentionVariant:
    kind: str  # gqa | linear | no_op
    kv_heads: int = 0

    def config(self, num_heads: int) -> AttentionConfig:
        from nas.decilm.configuration_decilm import AttentionConfig

        if self.kind == GQA:
            return AttentionConfig(n_heads_in_group=num_heads // self.kv_heads)
        return AttentionConfig(no_op=self.kind == NO_OP, replace_with_linear=self.kind == LINEAR)

    def label(self, parent_kv_heads: int) -> str:
        if self.kind == GQA:
            return f"attention = {self.kv_heads} kv heads (parent * {round(100 * self.kv_heads / parent_kv_heads)}%)"
        return f"attention = {self.kind} (parent * 0%)"


@dataclass(frozen=True)
class FFNVariant:
    kind: str  # swiglu | linear | no_op
    width: int = 0

    def config(self, hidden_size: int) -> FFNConfig:
        from nas.decilm.configuration_decilm import FFNConfig, intermediate_size_to_ffn_mult

        if self.kind == SWIGLU:
            return FFNConfig(ffn_mult=intermediate_size_to_ffn_mult(self.width, hidden_size))
        return FFNConfig(no_op=self.kind == NO_OP, replace_with_linear=self.kind == LINEAR)

    def label(self, parent_width: int) -> str:
        if self.kind == SWIGLU:
            size = f"{round(self.width / 1000)}e3" if self.width >= 1000 else str(self.width)  # public rounding
            return f"ffn = intermediate size {size} (parent * {round(100 * self.width / parent_width)}%)"
        return f"ffn = {self.kind} (parent * 0%)"


@dataclass(frozen=True)
class BlockVariant:
    attention: AttentionVariant
    ffn: FFNVariant

    def block_config(self, parent: DeciLMConfig) -> BlockConfig:
        from nas.decilm.configuration_decilm import BlockConfig

        return BlockConfig(self.attention.config(parent.num_attention_heads), self.ffn.config(parent.hidden_size))

    def key(self, parent: DeciLMConfig) -> str:
        """The Puzzle library name of this block."""
        return f"{self.attention.label(parent.num_kv_heads(0))}\t&&\t{self.ffn.label(parent.ffn_intermediate_size(0))}"


def parent_variant(parent: DeciLMConfig, layer: int) -> BlockVariant:
    return BlockVariant(AttentionVariant(GQA, parent.num_kv_heads(layer)),
                        FFNVariant(SWIGLU, parent.ffn_intermediate_size(layer)))


@dataclass(frozen=True)
class SearchSpace:
    """Options per sub-block. `linear` variants are off by default: vLLM ignores
    `replace_with_linear`, so a child using them would not serve there."""

    kv_heads: tuple[int, ...]
    ffn_widths: tuple[int, ...]
    attention_no_op: bool = True
    ffn_no_op: bool = True
    linear: bool = False

    @classmethod
    def from_parent(cls, parent: DeciLMConfig, ffn_fractions=(1.0, 0.75, 0.5, 0.25), linear: bool = False,
                    attention_no_op: bool = True, ffn_no_op: bool = True) -> "SearchSpace":
        """KV-head options: the parent's count and its halvings; FFN widths on the 256 grid."""
        kv, options = parent.num_kv_heads(0), []
        while kv >= 1 and parent.num_attention_heads % kv == 0:
            options.append(kv)
            kv //= 2
        width = parent.ffn_intermediate_size(0)
        widths = sorted({max(256, round(width * f / 256) * 256) for f in ffn_fractions}, reverse=True)
        return cls(tuple(options), tuple(widths), attention_no_op, ffn_no_op, linear)

    def attention_variants(self, layer: int) -> list[AttentionVariant]:
        out = [AttentionVariant(GQA, k) for k in self.kv_heads]
        if self.linear:
            out.append(AttentionVariant(LINEAR))
        if self.attention_no_op and layer > 0:  # vLLM cannot run no-op attention in layer 0
            out.append(AttentionVariant(NO_OP))
        return out

    def ffn_variants(self) -> list[FFNVariant]:
        out = [FFNVariant(SWIGLU, w) for w in self.ffn_widths]
        if self.linear:
            out.append(FFNVariant(LINEAR))
        if self.ffn_no_op:
            out.append(FFNVariant(NO_OP))
        return out

    def block_variants(self, layer: int) -> list[BlockVariant]:
        return [BlockVariant(a, f) for a in self.attention_variants(layer) for f in self.ffn_variants()]
