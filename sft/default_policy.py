"""Where the GRPO recipe finds its starting policy: the tiny SFT checkpoint, trained on demand."""
from __future__ import annotations

from pathlib import Path

from core.paths import reforge_home
from sft.config import SFTConfig

TINY_POLICY = "sft-tiny"


def ensure_tiny_sft_policy() -> Path:
    """The published tiny SFT policy (an HF dir vLLM loads). If it is not under
    reforge_home() yet, the default SFT run (SFTConfig() == recipes/configs/nano_sft_tiny.yaml)
    trains it in-process, a few minutes on 2 cores. vLLM is used for its held-out check, so
    call this under an `if __name__ == "__main__":` guard."""
    dest = reforge_home() / TINY_POLICY
    if not (dest / "config.json").exists():
        from sft.pipeline import run_sft

        run_sft(SFTConfig(publish_to=str(dest)))
    return dest
