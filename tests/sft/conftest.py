import pytest

from core.checkpoint import load_hf
from core.tiny import build_tiny_model


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def tiny(tiny_dir):
    """(model, tokenizer), freshly loaded so tests can train it."""
    return load_hf(tiny_dir)
