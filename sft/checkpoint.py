"""Exact-resume checkpoints: backend state (weights, optimizer, scheduler) + the step (which
is the data position, see sft.batching) + every RNG state of each rank."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from core.seed import rng_state, set_rng_state
from core.training import TrainingBackend

LATEST = "latest.json"


def save_checkpoint(directory: str | Path, backend: TrainingBackend, step: int) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backend.save_state(directory)
    torch.save({"step": step, "rng": rng_state()}, directory / f"trainer-rank{backend.rank}.pt")
    if backend.rank == 0:
        (directory.parent / LATEST).write_text(json.dumps({"step": step, "path": directory.name}))
    return directory


def load_checkpoint(directory: str | Path, backend: TrainingBackend) -> int:
    """Restore everything; returns the step to continue from."""
    directory = Path(directory)
    backend.load_state(directory)
    state = torch.load(directory / f"trainer-rank{backend.rank}.pt", weights_only=False)
    set_rng_state(state["rng"])
    return int(state["step"])


def latest_checkpoint(root: str | Path) -> Path | None:
    marker = Path(root) / LATEST
    if not marker.exists():
        return None
    return Path(root) / json.loads(marker.read_text())["path"]
