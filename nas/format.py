"""The `nemotron-nas` checkpoint format: registration, Llama conversion, saving.

Every saved child carries `configuration_decilm.py` and `modeling_decilm.py` and an
`auto_map` pointing at them, so HF (`trust_remote_code=True`) and vLLM load it offline
with nothing from reforge installed. In-process we use the classes from `nas.decilm`.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from nas.decilm.configuration_decilm import (AttentionConfig, BlockConfig, DeciLMConfig, FFNConfig,
                                             intermediate_size_to_ffn_mult)
from nas.decilm.modeling_decilm import DeciLMForCausalLM

DECILM_DIR = Path(__file__).parent / "decilm"
AUTO_MAP = {"AutoConfig": "configuration_decilm.DeciLMConfig",
            "AutoModelForCausalLM": "modeling_decilm.DeciLMForCausalLM"}
_SHARED_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "hidden_act",
                "max_position_embeddings", "initializer_range", "rms_norm_eps", "attention_bias", "mlp_bias",
                "head_dim", "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id")


def register_auto() -> None:
    """Make `AutoConfig` / `AutoModelForCausalLM` resolve `nemotron-nas` in-process."""
    try:
        AutoConfig.register(DeciLMConfig.model_type, DeciLMConfig)
        AutoModelForCausalLM.register(DeciLMConfig, DeciLMForCausalLM)
    except ValueError:  # already registered
        pass


def uniform_block(num_heads: int, num_kv_heads: int, intermediate_size: int, hidden_size: int) -> BlockConfig:
    return BlockConfig(AttentionConfig(n_heads_in_group=num_heads // num_kv_heads),
                       FFNConfig(ffn_mult=intermediate_size_to_ffn_mult(intermediate_size, hidden_size)))


def decilm_config_from_llama(llama_cfg, block_configs: list[BlockConfig] | None = None) -> DeciLMConfig:
    """A DeciLM config equal to a Llama config (or with the given per-layer blocks)."""
    shared = {k: getattr(llama_cfg, k) for k in _SHARED_KEYS if getattr(llama_cfg, k, None) is not None}
    rope = dict(getattr(llama_cfg, "rope_parameters", None) or {"rope_type": "default",
                                                                   "rope_theta": llama_cfg.rope_theta})
    if rope.get("rope_type", "default") != "default":
        raise NotImplementedError(f"rope type {rope['rope_type']} is not implemented in modeling_decilm")
    blocks = block_configs or [
        uniform_block(llama_cfg.num_attention_heads, llama_cfg.num_key_value_heads, llama_cfg.intermediate_size,
                      llama_cfg.hidden_size) for _ in range(llama_cfg.num_hidden_layers)]
    return DeciLMConfig(**shared, rope_theta=rope["rope_theta"], rope_parameters=rope,
                        block_configs=[b.to_dict() for b in blocks])


def llama_to_decilm(llama_model) -> DeciLMForCausalLM:
    """Identity conversion: same weights under the same names, in the DeciLM classes."""
    cfg = decilm_config_from_llama(llama_model.config)
    model = DeciLMForCausalLM(cfg)
    missing, unexpected = model.load_state_dict(llama_model.state_dict(), strict=False)
    missing = [k for k in missing if "rotary" not in k]
    unexpected = [k for k in unexpected if "rotary" not in k]
    if missing or unexpected:
        raise ValueError(f"Llama -> DeciLM weight mismatch: missing {missing}, unexpected {unexpected}")
    model.generation_config = llama_model.generation_config
    return model.to(next(llama_model.parameters()).dtype).eval()


def save_decilm(model: DeciLMForCausalLM, tokenizer, out_dir: str | Path) -> Path:
    """Weights, tokenizer, config with `auto_map`, and the two remote-code files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.config.auto_map = dict(AUTO_MAP)
    model.config.architectures = ["DeciLMForCausalLM"]
    model.save_pretrained(str(out), safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    for name in ("configuration_decilm.py", "modeling_decilm.py"):
        shutil.copy(DECILM_DIR / name, out / name)
    cfg = json.loads((out / "config.json").read_text())
    if cfg.get("model_type") != "nemotron-nas" or cfg.get("num_key_value_heads") is not None:
        raise AssertionError(f"saved config is not in nemotron-nas form: {out / 'config.json'}")
    return out


def load_decilm(model_dir: str | Path, dtype: torch.dtype = torch.float32) -> DeciLMForCausalLM:
    """Load a child with reforge's own classes (no remote code executed)."""
    cfg = DeciLMConfig.from_pretrained(str(model_dir), local_files_only=True)
    return DeciLMForCausalLM.from_pretrained(str(model_dir), config=cfg, dtype=dtype,
                                             local_files_only=True).eval()


register_auto()
