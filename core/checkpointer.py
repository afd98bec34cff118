"""One checkpoint layout and completion marker for every stage (GRPO, preference, SFT).

    <root>/step_<N>/
        checkpoint.json     the marker: step + the stage's JSON metadata; written last
        components.pt       registered stateful parts (sampler, curriculum, hooks, ...)
        rng_rank<r>.pt      Python/NumPy/torch RNG of each rank of the saving processes
        policy_state/       the policy's resume state, written by its own code (sharded
                            torch.distributed.checkpoint files under FSDP2, its ranks' RNG)
        policy/             the policy's HF export (optional; generators restart from it)

A step is written under `<root>/.step_<N>.partial` and renamed to `step_<N>` only after
every file (the marker last) is on disk, so a killed save leaves a hidden partial
directory that `latest()` never returns and the next save of that step replaces.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import torch

from core.seed import rng_state, set_rng_state

MARKER = "checkpoint.json"
COMPONENTS = "components.pt"
POLICY_STATE = "policy_state"
POLICY_HF = "policy"
PREFIX = "step_"
FORMAT = 1


@runtime_checkable
class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class PolicyState(Protocol):
    """What the checkpointer delegates to the policy (rl.actors.PolicyGroup, a training
    backend): sharded resume state; `save_hf` is used only when an export is asked for."""

    def save_state(self, directory: str) -> None: ...

    def load_state(self, directory: str) -> None: ...


def _dist_rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _dist_barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class Checkpointer:
    """Saves and restores one stage's checkpoints under `root`.

    Every rank of an in-process distributed job (torch.distributed initialised) calls
    `save`/`load` together; a Ray driver is one rank and hands the policy group to `save`.
    `keep_last` > 0 prunes all but the newest N complete steps after each save.
    """

    def __init__(self, root: str | Path, keep_last: int = 0, rank: int | None = None, world_size: int | None = None,
                 barrier: Callable[[], None] | None = None):
        self.root = Path(root)
        r, w = _dist_rank_world()
        self.rank = r if rank is None else rank
        self.world_size = w if world_size is None else world_size
        self.barrier = barrier or _dist_barrier
        self.keep_last = keep_last
        self.components: dict[str, Stateful] = {}

    # ---- registration -------------------------------------------------------------------
    def register(self, name: str, component: Stateful) -> None:
        """Save `component.state_dict()` with every checkpoint and restore it on `load`."""
        if not isinstance(component, Stateful):
            raise TypeError(f"checkpoint component {name!r}: {type(component).__name__} has no "
                            "state_dict()/load_state_dict()")
        if name in self.components:
            raise ValueError(f"checkpoint component {name!r} is already registered")
        self.components[name] = component

    # ---- layout -------------------------------------------------------------------------
    def step_dir(self, step: int) -> Path:
        return self.root / f"{PREFIX}{step}"

    def _partial_dir(self, step: int) -> Path:
        return self.root / f".{PREFIX}{step}.partial"

    def complete_steps(self) -> list[Path]:
        """Complete step directories, oldest first."""
        if not self.root.is_dir():
            return []
        out = []
        for p in self.root.iterdir():
            suffix = p.name[len(PREFIX):]
            if p.name.startswith(PREFIX) and suffix.isdigit() and (p / MARKER).is_file():
                out.append((int(suffix), p))
        return [p for _, p in sorted(out)]

    def latest(self) -> Path | None:
        done = self.complete_steps()
        return done[-1] if done else None

    def resolve(self, resume: str) -> Path | None:
        """`resume`: never | auto (the newest complete step, None if there is none) | a path."""
        if resume == "never":
            return None
        if resume == "auto":
            return self.latest()
        path = Path(resume)
        if not (path / MARKER).is_file():
            raise FileNotFoundError(f"resume={resume}: not a complete checkpoint (no {MARKER} in {path})")
        return path

    @staticmethod
    def read_marker(path: str | Path) -> dict[str, Any]:
        return json.loads((Path(path) / MARKER).read_text())

    # ---- save / load --------------------------------------------------------------------
    def save(self, step: int, meta: dict[str, Any] | None = None, policy: PolicyState | None = None,
             export_hf: bool = False) -> Path:
        """Write step `step` and make it visible atomically. `meta` must be JSON (it goes in
        the marker); tensors and RNG states belong in registered components."""
        tmp, final = self._partial_dir(step), self.step_dir(step)
        if self.rank == 0:
            if tmp.exists():
                shutil.rmtree(tmp)
            (tmp / POLICY_STATE).mkdir(parents=True)
        self.barrier()
        if policy is not None:
            if export_hf:
                policy.save_hf(str(tmp / POLICY_HF))
            policy.save_state(str(tmp / POLICY_STATE))
        torch.save(rng_state(), tmp / f"rng_rank{self.rank}.pt")
        if self.rank == 0:
            torch.save({name: c.state_dict() for name, c in self.components.items()}, tmp / COMPONENTS)
        self.barrier()
        if self.rank == 0:
            marker = {"format": FORMAT, "step": step, "world_size": self.world_size,
                      "components": sorted(self.components), "policy_state": policy is not None,
                      "policy_hf": policy is not None and export_hf, "meta": meta or {}}
            (tmp / MARKER).write_text(json.dumps(marker, indent=1))
            _fsync_dir(tmp)
            if final.exists():  # a re-save of this step (e.g. after a resume): replace it
                old = self.root / f".{PREFIX}{step}.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old)
            else:
                os.replace(tmp, final)
            _fsync_dir(self.root)
            self._prune()
        self.barrier()
        return final

    def load(self, path: str | Path, policy: PolicyState | None = None) -> dict[str, Any]:
        """Restore the policy state, every registered component and this rank's RNG from a
        complete checkpoint; returns its marker (`step`, `meta`, ...)."""
        path = Path(path)
        self.resolve(str(path))  # raises unless the step is complete
        info = self.read_marker(path)
        if policy is not None:
            if not info["policy_state"]:
                raise FileNotFoundError(f"{path}: the checkpoint holds no policy state")
            policy.load_state(str(path / POLICY_STATE))
        states = torch.load(path / COMPONENTS, weights_only=False)
        missing = sorted(set(self.components) - set(states))
        if missing:
            raise KeyError(f"{path / COMPONENTS}: no state for registered component(s) {missing} "
                           f"(saved: {sorted(states)})")
        for name, component in self.components.items():
            component.load_state_dict(states[name])
        rng = path / f"rng_rank{self.rank}.pt"
        if not rng.is_file():
            raise FileNotFoundError(f"{rng}: no RNG state for rank {self.rank} (saved with world size "
                                    f"{info['world_size']})")
        set_rng_state(torch.load(rng, weights_only=False))
        return info

    def _prune(self) -> None:
        if self.keep_last > 0:
            for old in self.complete_steps()[:-self.keep_last]:
                shutil.rmtree(old)


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (the rename) to disk where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
