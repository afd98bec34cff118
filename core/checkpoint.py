"""HF-format checkpoint io (safetensors + tokenizer + configs)."""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def save_hf(model, tokenizer, out_dir: str | Path, state_dict: dict | None = None) -> Path:
    """Write an HF directory that transformers and vLLM load offline.

    `state_dict` lets a sharded trainer pass a gathered full state dict.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True, state_dict=state_dict)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out


def load_hf(model_dir: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu"):
    """(model, tokenizer) from an HF directory, never touching the network. Remote code is
    the directory's own (e.g. a `nemotron-nas` checkpoint's modeling_decilm.py)."""
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, local_files_only=True,
                                                 trust_remote_code=True)
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    return model.to(device), tok
