"""SFT with the reasoning on/off toggle. With no arguments: the tiny default model trained
from scratch on synthetic math (on + off, levels 1-4) and code, then held-out accuracy in
both modes. The last printed line is the run directory.

    python recipes/nano_sft.py [config=recipes/configs/sft_nano_stage1.yaml] [key=value ...]
    torchrun --nproc_per_node 2 recipes/nano_sft.py train.backend=fsdp2
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.config import parse_cli  # noqa: E402
from sft.config import SFTConfig  # noqa: E402

DEFAULT_CONFIG = ROOT / "recipes" / "configs" / "nano_sft_tiny.yaml"


def main(argv: list[str] | None = None) -> None:
    cfg = parse_cli(SFTConfig, argv, default_path=DEFAULT_CONFIG, prog="nano_sft.py")
    from sft.pipeline import run_sft

    summary = run_sft(cfg)
    if summary:
        keys = sorted(k for k in summary if k.startswith("accuracy_") and k.count("_") <= 2)
        print(json.dumps({k: summary[k] for k in ["seconds_total", *keys]}), flush=True)
        print(summary["run_dir"], flush=True)


if __name__ == "__main__":
    main()
