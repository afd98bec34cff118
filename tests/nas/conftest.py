"""A small random nemotron-nas parent (hidden 128, 4 layers, 4 heads / 2 KV heads, FFN
512): big enough for every variant kind, small enough for fast tests."""
from __future__ import annotations

import pytest
import torch

from core.presets import ModelPreset

NAS_TEST = ModelPreset(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                       intermediate_size=512, max_position_embeddings=256)


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory) -> str:
    from core.presets import PRESETS
    from core.tiny import build_tiny_model

    PRESETS.setdefault("nas-test", NAS_TEST)
    return str(build_tiny_model(tmp_path_factory.mktemp("nas") / "llama", preset="nas-test", seed=0))


@pytest.fixture(scope="session")
def parent_dir(llama_dir, tmp_path_factory) -> str:
    from core.checkpoint import load_hf
    from nas.format import llama_to_decilm, save_decilm

    llama, tok = load_hf(llama_dir)
    return str(save_decilm(llama_to_decilm(llama), tok, tmp_path_factory.mktemp("nas") / "parent"))


@pytest.fixture()
def parent(parent_dir):
    from nas.format import load_decilm

    return load_decilm(parent_dir)


@pytest.fixture(scope="session")
def tok(llama_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(llama_dir)


@pytest.fixture(scope="session")
def batch(tok):
    from nas.data import math_batch

    return math_batch(tok, 8, 123)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
