"""Shared fixtures: one tiny model directory and one vLLM-CPU engine per test session."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    from core.tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", preset="tiny", seed=0))


@pytest.fixture(scope="session")
def vllm_engine(tiny_model_dir):
    from core.engines.factory import EngineSettings, make_engine

    engine = make_engine(tiny_model_dir, EngineSettings(engine="vllm", max_model_len=512))
    yield engine
    engine.shutdown()


@pytest.fixture(scope="session")
def hf_engine(tiny_model_dir):
    from core.engines.hf_engine import HFEngine

    return HFEngine(tiny_model_dir)
