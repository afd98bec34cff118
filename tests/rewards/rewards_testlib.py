"""Helpers shared by the rewards tests: small sandbox limits and leftover checks."""
from __future__ import annotations

import os
from pathlib import Path

from rewards.sandbox import Limits

SMALL = Limits(timeout_s=2.0, cpu_s=1, memory_mb=128, file_size_mb=4, open_files=32,
               processes=32, workdir_mb=8, output_bytes=4096)


TEST_UID = 61999  # the tests' sandboxes run as this uid, so other users of the sandbox on
                  # this machine (concurrent test suites) do not count as our leftovers


def sandbox_processes() -> list[str]:
    """Live (non-zombie) processes owned by TEST_UID.

    Zombies are excluded: bwrap leaves its namespace's init for the host's init to reap.
    """
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        uid_line = next((l for l in text.splitlines() if l.startswith("Uid:")), "")
        state_line = next((l for l in text.splitlines() if l.startswith("State:")), "")
        if uid_line.split()[1:2] == [str(TEST_UID)] and "Z" not in state_line.split()[1:2]:
            found.append(status.parent.name)
    return found


def run_cgroups_with_tasks() -> list[Path]:
    """This process's per-run cgroups that still hold a task (empty ones may await rmdir
    until the host's init reaps a zombie; cgroups.remove_pending cleans those up)."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctl, path = line.split(":", 2)
        own[ctl] = path
    bases = [Path("/sys/fs/cgroup") / own.get("", "/").lstrip("/"),
             Path("/sys/fs/cgroup/pids") / own.get("pids", "/").lstrip("/"),
             Path("/sys/fs/cgroup/memory") / own.get("memory", "/").lstrip("/")]
    dirs = [d for b in bases if b.is_dir() for d in b.glob(f"reforge-sbx-{os.getpid()}-*")]
    return [d for d in dirs if d.exists() and (d / "cgroup.procs").read_text().strip()]
