"""The shared training backend (plain / FSDP2 / DeepSpeed ZeRO) and its optimisation config."""
from core.training.backend import BACKENDS, TrainingBackend, build_backend
from core.training.config import TrainConfig

__all__ = ["BACKENDS", "TrainConfig", "TrainingBackend", "build_backend"]
