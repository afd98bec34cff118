"""Resource limits of one sandboxed run, and how they are applied in the child.

rlimits bound each process; the per-run cgroup (see cgroups.py) bounds the run as a whole,
which matters because root ignores RLIMIT_NPROC and a fork bomb multiplies per-process limits.
"""
from __future__ import annotations

import resource
from dataclasses import asdict, dataclass, fields
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one run may use. Sizes are MiB, times are seconds."""

    timeout_s: float = 10.0          # wall clock; the whole run is killed after it
    cpu_s: int = 10                  # RLIMIT_CPU per process (SIGXCPU)
    memory_mb: int = 512             # RLIMIT_AS per process, and the cgroup's memory cap
    file_size_mb: int = 16           # RLIMIT_FSIZE: largest file a process may write
    open_files: int = 64             # RLIMIT_NOFILE
    processes: int = 64              # cgroup pids.max (threads count) and RLIMIT_NPROC
    workdir_mb: int = 64             # size of the throw-away working directory (tmpfs under bwrap)
    output_bytes: int = 64 * 1024    # stdout and stderr are each cut after this many bytes

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{f.name} must be a positive number, got {value!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Limits":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown sandbox limit(s) {unknown}; allowed: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def apply_rlimits(limits: Limits) -> None:
    """Set hard == soft (except CPU, whose soft limit sends SIGXCPU first); runs in the child."""
    cpu = int(limits.cpu_s)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    mem = int(limits.memory_mb * MIB)
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    size = int(limits.file_size_mb * MIB)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits.open_files), int(limits.open_files)))
    resource.setrlimit(resource.RLIMIT_NPROC, (int(limits.processes), int(limits.processes)))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
