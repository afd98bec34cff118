"""Model size presets (import-light, so the CLI can list them without torch)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelPreset:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    max_position_embeddings: int = 1024


# head_dim stays a multiple of 32: vLLM's CPU attention kernels require it.
PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(128, 6, 4, 2, 384),  # ~1.4 M parameters, the default
    "tiny-deep": ModelPreset(256, 12, 8, 4, 768),  # ~9.7 M, the NAS parent
    "small": ModelPreset(512, 8, 8, 4, 1408),  # ~24 M, generation-bound benchmarks
    "base": ModelPreset(768, 12, 12, 4, 2048, 2048),  # ~100 M
    "1b": ModelPreset(2048, 16, 32, 8, 8192, 4096),  # GPU benchmarks (random weights)
}
