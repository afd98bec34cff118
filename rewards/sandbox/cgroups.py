"""A cgroup per sandboxed run: caps its process count and memory, and kills all of it.

Created under this process's own cgroup so no system-wide configuration is needed. Works
with cgroup v2 (one unified tree) and v1 (separate `pids` and `memory` hierarchies, as on
this project's CI machines). Where neither is writable, `RunCgroup.create` returns None and
the sandbox relies on its PID namespace and rlimits alone.
"""
from __future__ import annotations

import atexit
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own_paths() -> dict[str, str]:
    """Map controller name ('' for v2) to this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _write(path: Path, value: str) -> None:
    path.write_text(value)


PREFIX = "reforge-sbx-"
_pending: list[Path] = []
_pending_lock = threading.Lock()


def _remove_pending() -> None:
    with _pending_lock:
        for d in list(_pending):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                continue
            _pending.remove(d)


def remove_pending(wait_s: float = 10.0) -> bool:
    """Retry the busy run directories until gone or `wait_s` passed; True when none is left."""
    deadline = time.monotonic() + wait_s
    while True:
        _remove_pending()
        if not _pending or time.monotonic() > deadline:
            return not _pending
        time.sleep(0.05)


atexit.register(remove_pending, 5.0)


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class RunCgroup:
    """The directories of one run's cgroup (one for v2; a pids and a memory one for v1)."""

    version: int
    dirs: list[Path]
    pids_dir: Path
    memory_dir: Path | None
    _fds: list[int] = field(default_factory=list)

    @classmethod
    def create(cls, pids_max: int, memory_bytes: int) -> "RunCgroup | None":
        _remove_pending()
        name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        own = _own_paths()
        if (ROOT / "cgroup.controllers").exists():
            base = ROOT / own.get("", "/").lstrip("/")
            if not _writable_dir(base) or "pids" not in (base / "cgroup.subtree_control").read_text():
                return None
            run = base / name
            run.mkdir()
            group = cls(2, [run], run, run if (run / "memory.max").exists() else None)
            _write(run / "pids.max", str(pids_max))
            if group.memory_dir:
                _write(run / "memory.max", str(memory_bytes))
                if (run / "memory.swap.max").exists():
                    _write(run / "memory.swap.max", "0")
            return group
        pids_base = ROOT / "pids" / own.get("pids", "/").lstrip("/")
        if not _writable_dir(pids_base):
            return None
        pids_dir = pids_base / name
        pids_dir.mkdir()
        _write(pids_dir / "pids.max", str(pids_max))
        dirs, memory_dir = [pids_dir], None
        mem_base = ROOT / "memory" / own.get("memory", "/").lstrip("/")
        if _writable_dir(mem_base):
            memory_dir = mem_base / name
            memory_dir.mkdir()
            _write(memory_dir / "memory.limit_in_bytes", str(memory_bytes))
            dirs.append(memory_dir)
        return cls(1, dirs, pids_dir, memory_dir)

    def open_for_child(self) -> None:
        """Open the cgroup.procs files now, so the forked child only has to write its pid."""
        self._fds = [os.open(d / "cgroup.procs", os.O_WRONLY) for d in self.dirs]

    def join_from_child(self) -> None:
        """Called between fork and exec: move the calling process into every directory."""
        for fd in self._fds:
            os.write(fd, b"0")

    def close_fds(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def pids(self) -> list[int]:
        text = (self.pids_dir / "cgroup.procs").read_text()
        return [int(p) for p in text.split()]

    def kill_all(self, wait_s: float = 5.0) -> bool:
        """SIGKILL every task until the cgroup is empty and the killed tasks have left /proc.

        Waiting on /proc, not pids.current: cgroup v1 releases the pids charge of an exited
        task up to ~2 s late. A zombie counts as gone: bwrap's outer process exits without
        reaping its PID namespace's init, which the host's init then reaps; by the time that
        init is a zombie the kernel has already killed everything else in its namespace.
        """
        kill_file = self.pids_dir / "cgroup.kill"
        deadline = time.monotonic() + wait_s
        killed: set[int] = set()
        while pids := self.pids():
            killed.update(pids)
            if self.version == 2 and kill_file.exists():
                _write(kill_file, "1")
            else:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        while any(alive(pid) for pid in killed):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def events(self) -> dict[str, int]:
        """Which limits were hit: {'processes': n, 'memory': n} (counts of refusals / OOM kills)."""
        hits = {"processes": 0, "memory": 0}
        events = self.pids_dir / "pids.events"
        if events.exists():
            for line in events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    hits["processes"] = int(value)
        if self.memory_dir is not None:
            if self.version == 2:
                for line in (self.memory_dir / "memory.events").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        hits["memory"] = int(value)
            else:
                hits["memory"] = int((self.memory_dir / "memory.failcnt").read_text())
        return hits

    def remove(self) -> None:
        """rmdir now, or later: a zombie the host's init has not reaped yet keeps the
        directory busy (seconds on some hosts); such directories are retried by later runs
        and at exit instead of stalling this one."""
        self.close_fds()
        with _pending_lock:
            _pending.extend(self.dirs)
        _remove_pending()
