"""The embedded default model: a Llama-architecture model built from a size preset, with
the locally trained tokenizer, saved as an HF directory that transformers and vLLM load
offline. Nothing is downloaded, ever.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

from core.checkpoint import save_hf
from core.data.synth import corpus
from core.presets import PRESETS, ModelPreset
from core.seed import seed_everything
from core.tokenizer import train_tokenizer


def llama_config(preset: str | ModelPreset, vocab_size: int, bos_id: int, eos_id: int,
                 pad_id: int) -> LlamaConfig:
    p = PRESETS[preset] if isinstance(preset, str) else preset
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=p.hidden_size, intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_hidden_layers, num_attention_heads=p.num_attention_heads,
        num_key_value_heads=p.num_key_value_heads, max_position_embeddings=p.max_position_embeddings,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, torch_dtype="float32",
        bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id,
    )


def build_tiny_model(out_dir: str | Path, preset: str = "tiny", vocab_size: int = 1024,
                     seed: int = 0) -> Path:
    """Train the tokenizer, initialise the model and write the HF directory."""
    seed_everything(seed)
    tok = train_tokenizer(corpus(), vocab_size=vocab_size)
    cfg = llama_config(preset, len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        do_sample=True, temperature=0.6, top_p=0.95, max_new_tokens=256,
    )
    return save_hf(model, tok, out_dir)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
