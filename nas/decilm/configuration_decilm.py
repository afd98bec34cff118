"""`nemotron-nas` (DeciLM) configuration: a Llama config whose layers differ.

Self-contained on purpose: this file is copied into every saved child next to
`modeling_decilm.py` and loaded through `auto_map` with `trust_remote_code=True`, by HF
and by vLLM (which ships its own `DeciLMForCausalLM` but reads this config). vLLM reads
`block_configs[i].attention.no_op` etc. as attributes, so entries are dataclass objects
here and plain dicts only in `to_dict()`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from transformers import PretrainedConfig


def ffn_mult_to_intermediate_size(ffn_mult: float, hidden_size: int) -> int:
    """The released width rule: round_up(int(2 * ffn_mult * hidden / 3), 256)."""
    size = int(2 * ffn_mult * hidden_size / 3)
    return size if size % 256 == 0 else size + 256 - size % 256


def intermediate_size_to_ffn_mult(intermediate_size: int, hidden_size: int) -> float:
    """Inverse of the width rule; only widths on its 256 grid are representable."""
    mult = 3 * intermediate_size / (2 * hidden_size)
    if ffn_mult_to_intermediate_size(mult, hidden_size) != intermediate_size:
        raise ValueError(f"FFN width {intermediate_size} is not representable for hidden {hidden_size} "
                         "(the DeciLM width rule rounds up to a multiple of 256)")
    return mult


@dataclass
class AttentionConfig:
    no_op: bool = False
    replace_with_linear: bool = False
    n_heads_in_group: int | None = None
    sparsify: Any = None
    window_length: int | None = None
    num_sink_tokens: int | None = None
    use_prefill_window_in_sink_attention: bool = False
    unshifted_sink: bool = False

    def __post_init__(self):
        if not (self.no_op or self.replace_with_linear) and (self.n_heads_in_group or 0) <= 0:
            raise ValueError("attention.n_heads_in_group must be a positive integer for a real attention block")


@dataclass
class FFNConfig:
    no_op: bool = False
    replace_with_linear: bool = False
    ffn_mult: float | None = None
    sparsify: Any = None

    def __post_init__(self):
        if not (self.no_op or self.replace_with_linear) and not self.ffn_mult:
            raise ValueError("ffn.ffn_mult must be set for a real FFN block")


@dataclass
class BlockConfig:
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    ffn: FFNConfig = field(default_factory=FFNConfig)

    @classmethod
    def from_dict(cls, d: dict | "BlockConfig") -> "BlockConfig":
        if isinstance(d, BlockConfig):
            return d
        attn, ffn = d.get("attention", {}), d.get("ffn", {})
        return cls(AttentionConfig(**attn) if isinstance(attn, dict) else attn,
                   FFNConfig(**ffn) if isinstance(ffn, dict) else ffn)

    def to_dict(self) -> dict:
        return {"attention": dataclasses.asdict(self.attention), "ffn": dataclasses.asdict(self.ffn)}


class DeciLMConfig(PretrainedConfig):
    model_type = "nemotron-nas"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(self, vocab_size: int = 32000, hidden_size: int = 4096, num_hidden_layers: int = 32,
                 num_attention_heads: int = 32, hidden_act: str = "silu", max_position_embeddings: int = 2048,
                 initializer_range: float = 0.02, rms_norm_eps: float = 1e-5, use_cache: bool = True,
                 rope_theta: float = 10000.0, rope_parameters: dict | None = None, attention_bias: bool = False,
                 mlp_bias: bool = False, attention_dropout: float = 0.0, head_dim: int | None = None,
                 tie_word_embeddings: bool = False, block_configs: list | None = None, **kwargs):
        kwargs.pop("num_key_value_heads", None)  # per layer; always null at the top
        kwargs.pop("intermediate_size", None)
        kwargs.pop("rope_scaling", None)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.rope_theta = rope_theta
        self.rope_parameters = rope_parameters or {"rope_type": "default", "rope_theta": rope_theta}
        self.attention_bias = attention_bias
        self.mlp_bias = mlp_bias
        self.attention_dropout = attention_dropout
        self.head_dim = head_dim or hidden_size // num_attention_heads
        self.num_key_value_heads = None
        self.intermediate_size = None
        blocks = block_configs if block_configs is not None else [
            {"attention": {"n_heads_in_group": 1}, "ffn": {"ffn_mult": 2.625}}] * num_hidden_layers
        self.block_configs = [BlockConfig.from_dict(b) for b in blocks]
        if len(self.block_configs) != num_hidden_layers:
            raise ValueError(f"block_configs has {len(self.block_configs)} entries for {num_hidden_layers} layers")
        for i, b in enumerate(self.block_configs):
            g = b.attention.n_heads_in_group
            if not (b.attention.no_op or b.attention.replace_with_linear) and num_attention_heads % g:
                raise ValueError(f"layer {i}: n_heads_in_group={g} does not divide {num_attention_heads} heads")
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    def num_kv_heads(self, layer: int) -> int:
        """KV heads of one layer (0 for no-op or linear attention, which keep no cache)."""
        a = self.block_configs[layer].attention
        return 0 if a.no_op or a.replace_with_linear else self.num_attention_heads // a.n_heads_in_group

    def ffn_intermediate_size(self, layer: int) -> int:
        f = self.block_configs[layer].ffn
        return 0 if f.no_op or f.replace_with_linear else ffn_mult_to_intermediate_size(f.ffn_mult, self.hidden_size)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["block_configs"] = [b.to_dict() for b in self.block_configs]
        out["num_key_value_heads"] = None
        out["intermediate_size"] = None
        return out
