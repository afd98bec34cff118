"""The RL generators' config: one engine's settings (core.engines.factory) plus how many
engines run and what each Ray actor reserves. The actors are core.engines.group's."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from core.engines.factory import EngineSettings


@dataclass
class GeneratorConfig(EngineSettings):
    """Which engine generates rollouts and how it is sized."""

    max_model_len: int = field(default=512, metadata={"help": (
        "prompt + completion tokens per sequence (the rollout engines' context)")})
    num_engines: int = field(default=1, metadata={"help": "engine actors; prompts are split between them"})
    num_cpus_per_engine: float = field(default=1.0, metadata={"help": "Ray CPU request per engine actor"})
    num_gpus_per_engine: float = field(default=0.0, metadata={"help": (
        "Ray GPU request (= tensor_parallel_size on GPU)")})

    KEY_PREFIX: ClassVar[str] = "generator."
