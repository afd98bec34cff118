"""The outcome of one sandboxed run, as a plain serialisable record."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Verdict:
    """What happened: `exit_code` is None when a signal ended the program.

    `resource` names the limit that stopped the run, if one did: wall_time, cpu_time,
    memory, file_size, disk, processes, open_files or output.
    """

    exit_code: int | None
    timed_out: bool
    signal: str | None
    resource: str | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    seconds: float
    backend: str
    isolated: bool            # False only on the opt-in "none" backend: nothing was contained

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(data))
        if missing:
            raise ValueError(f"verdict is missing field(s) {missing}")
        return cls(**{k: data[k] for k in names})
