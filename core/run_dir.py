"""One run directory per recipe run: resolved config, metrics, checkpoints, summary.json.

Its path is printed when the run starts and as the very last line when it ends, so a
script can pick it up with `tail -n1`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from core.config import save_config


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.started = time.time()

    @classmethod
    def create(cls, root: str | Path, name: str, explicit: str | None = None) -> "RunDir":
        path = Path(explicit) if explicit else Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = cls(path)
        print(f"run directory: {run.path}", flush=True)
        return run

    def save_config(self, cfg: Any) -> None:
        save_config(cfg, self.path / "config.yaml")

    def elapsed(self) -> float:
        return round(time.time() - self.started, 2)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        summary = {**summary, "seconds_total": self.elapsed()}
        out = self.path / "summary.json"
        out.write_text(json.dumps(summary, indent=2, sort_keys=True))
        return out

    def finish(self) -> None:
        print(self.path, flush=True)
