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


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Toy shapes: a second thread only adds synchronisation (and on a shared 2-core machine,
    oversubscription that made these tests 3x slower)."""
    import torch

    torch.set_num_threads(1)
