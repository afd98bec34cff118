"""Helpers shared by the rewards tests: small sandbox limits and leftover checks."""
from __future__ import annotations

import os
import signal
from pathlib import Path

from rewards.sandbox.battery import BATTERY_UID, LIMITS, processes_of

SMALL = LIMITS
TEST_UID = BATTERY_UID  # the tests' sandboxes run as this uid, so other users of the sandbox
                        # on this machine (concurrent test suites) do not count as our leftovers


def sandbox_processes() -> list[int]:
    """Live (non-zombie) processes owned by TEST_UID."""
    return processes_of(TEST_UID)


def kill_sandbox_processes() -> list[int]:
    """SIGKILL whatever runs as TEST_UID (only our sandboxes do); the pids it found."""
    found = sandbox_processes()
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
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
