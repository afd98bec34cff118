"""Exact-resume checkpoints of SFT through core.checkpointer: backend state (weights,
optimizer, scheduler) under policy_state/, the step (which is the data position, see
sft.batching) in the marker, and every RNG state of each rank."""
from __future__ import annotations

from pathlib import Path

from core.checkpointer import Checkpointer
from core.training import TrainingBackend


def _checkpointer(root: str | Path, backend: TrainingBackend) -> Checkpointer:
    return Checkpointer(root, rank=backend.rank, world_size=backend.world_size)


def save_checkpoint(root: str | Path, backend: TrainingBackend, step: int) -> Path:
    """Write `root/step_<step>` (collective: every rank calls it)."""
    return _checkpointer(root, backend).save(step, policy=backend)


def load_checkpoint(directory: str | Path, backend: TrainingBackend) -> int:
    """Restore everything; returns the step to continue from."""
    return int(_checkpointer(Path(directory).parent, backend).load(directory, policy=backend)["step"])


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint under `root` (an interrupted save is never returned)."""
    return Checkpointer(root).latest()
