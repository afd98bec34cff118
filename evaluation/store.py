"""generations.jsonl as the resume log: one finished prompt per line, appended as it completes.

A run killed mid-write can leave a torn last line; opening the store cuts the file back to
the last complete line, so the next append starts clean and the torn prompt is redone.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class GenerationStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        good_end = 0
        with self.path.open("rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break
                self.records[record["key"]] = record
                good_end += len(line)
        if good_end < self.path.stat().st_size:
            with self.path.open("r+b") as f:
                f.truncate(good_end)

    def done(self, key: str) -> bool:
        return key in self.records

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write and fsync a batch of finished prompts before they count as done."""
        with self.path.open("a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for r in records:
            self.records[r["key"]] = r
