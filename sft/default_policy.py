"""Where the GRPO recipe finds its starting policy: the tiny SFT checkpoints, trained on demand.

`sft-tiny` is the default SFT run (SFTConfig() == recipes/configs/nano_sft_tiny.yaml);
`sft-tiny-tools` is it fine-tuned on calculator-call traces (recipes/configs/
nano_sft_tools_tiny.yaml), the starting policy of GRPO in the tool environment. The tool-use
policy carries a stamp of what built it (its config and the trace renderer's source), so a
cached copy built from older traces is rebuilt rather than silently reused.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from core.paths import reforge_home
from sft.config import SFTConfig

TINY_POLICY = "sft-tiny"
TINY_TOOLS_POLICY = "sft-tiny-tools"
TOOLS_CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "nano_sft_tools_tiny.yaml"
BUILD_STAMP = "reforge_build.sha256"  # in a published policy dir: what built it


def ensure_tiny_sft_policy() -> Path:
    """The published tiny SFT policy (an HF dir vLLM loads). If it is not under
    reforge_home() yet, the default SFT run trains it in-process, a few minutes on 2 cores.
    vLLM is used for its held-out check, so call this under an `if __name__ == "__main__":` guard."""
    dest = reforge_home() / TINY_POLICY
    if not (dest / "config.json").exists():
        from sft.pipeline import run_sft

        run_sft(SFTConfig(publish_to=str(dest)))
    return dest


def build_fingerprint(cfg: SFTConfig) -> str:
    """What a rebuild would change: the resolved config and the code that renders the traces."""
    from core.config import to_yaml
    from core.data import math_tasks
    from sft import tool_traces

    h = hashlib.sha256(to_yaml(cfg).encode())
    for module in (tool_traces, math_tasks):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


def ensure_tiny_tools_policy(config: str | Path = TOOLS_CONFIG) -> Path:
    """The published tiny tool-use policy: `config` (its base, sft-tiny, built first when absent)
    trained in-process unless reforge_home() holds one stamped with the same build fingerprint."""
    from core.config import load_config

    cfg = load_config(SFTConfig, config)
    dest = reforge_home() / TINY_TOOLS_POLICY
    cfg.publish_to = str(dest)
    fingerprint = build_fingerprint(cfg)
    stamp = dest / BUILD_STAMP
    if not (stamp.exists() and stamp.read_text().strip() == fingerprint):
        from sft.pipeline import run_sft

        if cfg.model.base == TINY_POLICY:
            ensure_tiny_sft_policy()
        run_sft(cfg)
        stamp.write_text(fingerprint + "\n")
    return dest


def ensure_default_policy(environment: str) -> Path:
    """The starting policy when a GRPO config names no model: the tool-use one for the tool
    environment (the plain policy never saw a tools block or a tool turn), else the plain one."""
    return ensure_tiny_tools_policy() if environment == "tools" else ensure_tiny_sft_policy()
