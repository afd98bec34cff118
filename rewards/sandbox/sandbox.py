"""Run one untrusted Python program and return a Verdict; the host is never at risk.

Per run: a fresh process in new namespaces (backends.py), rlimits and a per-run cgroup
(limits.py, cgroups.py), an empty environment, a throw-away working directory, stdout and
stderr cut at a cap, and a wall-clock deadline after which the launcher's process group, its
PID namespace and its cgroup are all killed. Nothing the program started outlives the run.
"""
from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Callable

from .backends import PROGRAM, Backend, detect, system_python, warn_unisolated
from .cgroups import RunCgroup, alive
from .limits import MIB, Limits, apply_rlimits
from .verdict import Verdict

_STDERR_HINTS = (  # last line of a Python traceback -> the limit that caused it
    ("MemoryError", "memory"),
    ("File too large", "file_size"),
    ("can't start new thread", "processes"),
    ("Resource temporarily unavailable", "processes"),
    ("Too many open files", "open_files"),
    ("No space left on device", "disk"),
)


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _wait_namespace_gone(status_r: int, wait_s: float = 5.0) -> bool:
    """Wait until bwrap's PID-namespace init (pid read from --json-status-fd) has exited.

    bwrap's outer process exits as soon as the program does, while its init is still
    killing the rest of the namespace; once that init is a zombie, nothing in it runs.
    """
    os.set_blocking(status_r, False)
    try:
        text = os.read(status_r, 65536).decode()
    except BlockingIOError:
        return True
    pids = [json.loads(line)["child-pid"] for line in text.splitlines() if "child-pid" in line]
    deadline = time.monotonic() + wait_s
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


class Sandbox:
    """Runs Python source under `limits`; thread-safe, one process tree per `run` call."""

    def __init__(self, limits: Limits | None = None, backend: Backend | str | None = None,
                 allow_unisolated: bool = False, use_cgroup: bool = True,
                 python: str | None = None) -> None:
        """backend: a Backend, or a name ("auto", "bwrap", "unshare", "none"); None reads
        $REFORGE_SANDBOX_BACKEND (default auto). An isolating backend is used only once its
        probe showed it contains code; "none" needs to be asked for (or allow_unisolated)."""
        self.limits = limits or Limits()
        if isinstance(backend, Backend):
            self.backend = backend
        elif backend is None or isinstance(backend, str):
            self.backend = detect(allow_unisolated, backend)
        else:
            raise ValueError(f"backend must be a name or a Backend, got {backend!r}")
        if not self.backend.isolated:
            warn_unisolated()
        self.use_cgroup = use_cgroup
        self.python = python or system_python()

    def run(self, code: str, files: dict[str, str | bytes] | None = None, stdin: str = "",
            limits: Limits | None = None) -> Verdict:
        """Execute `code` as prog.py next to `files` (name -> content) in a fresh sandbox."""
        limits = limits or self.limits
        contents = {PROGRAM: code, **(files or {})}
        for name in contents:
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"sandbox file name must be a plain name, got {name!r}")
        start = time.monotonic()
        fds: list[int] = []
        workdir = None
        cgroup = None
        try:
            file_fds: dict[str, int] = {}
            if self.backend.needs_host_workdir:
                workdir = self._host_workdir(contents)
            else:
                for name, data in contents.items():
                    fd = _memfd(name, data.encode() if isinstance(data, str) else data)
                    fds.append(fd)
                    file_fds[name] = fd
            stdin_fd = _memfd("stdin", stdin.encode())
            fds.append(stdin_fd)
            if self.use_cgroup:
                cgroup = RunCgroup.create(limits.processes + 8,
                                          int((limits.memory_mb + limits.workdir_mb + 64) * MIB))
                if cgroup:
                    cgroup.open_for_child()
            status_r, status_w = os.pipe()
            fds += [status_r, status_w]
            argv = self.backend.command(self.python, file_fds, int(limits.workdir_mb * MIB),
                                        status_w)
            proc = subprocess.Popen(
                argv, stdin=stdin_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin"}, cwd=workdir or "/", start_new_session=True,
                pass_fds=list(file_fds.values()) + [status_w],
                preexec_fn=self._child_setup(limits, cgroup))
            os.close(status_w)
            fds.remove(status_w)
            if cgroup:
                cgroup.close_fds()
            out, err, timed_out = self._collect(proc, limits, start)
            if timed_out:
                self._kill(proc)
            proc.wait()
            leftovers_killed = _wait_namespace_gone(status_r)
            leftovers_killed = (cgroup.kill_all() if cgroup else True) and leftovers_killed
            hits = cgroup.events() if cgroup else {"processes": 0, "memory": 0}
        finally:
            for fd in fds:
                os.close(fd)
            if cgroup:
                cgroup.remove()
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
        if not leftovers_killed:
            raise RuntimeError("sandbox: processes of the run survived SIGKILL of its cgroup")
        return self._verdict(proc.returncode, timed_out, out, err, hits, limits,
                             time.monotonic() - start)

    def _child_setup(self, limits: Limits, cgroup: RunCgroup | None) -> Callable[[], None]:
        drop_to = self.backend.uid
        nproc_limit = limits if cgroup is None else Limits(**{**limits.to_dict(), "processes": 4096})

        def setup() -> None:  # runs between fork and exec: no locks, no imports
            if cgroup is not None:
                cgroup.join_from_child()
            apply_rlimits(nproc_limit)
            if drop_to is not None:
                os.setgroups([])
                os.setgid(drop_to)
                os.setuid(drop_to)
        return setup

    def _host_workdir(self, contents: dict[str, str | bytes]) -> str:
        workdir = tempfile.mkdtemp(prefix="reforge-sbx-")
        for name, data in contents.items():
            mode = "w" if isinstance(data, str) else "wb"
            with open(os.path.join(workdir, name), mode) as f:
                f.write(data)
        uid = self.backend.uid
        if os.geteuid() == 0 and uid is not None:
            for path in [workdir] + [os.path.join(workdir, n) for n in contents]:
                os.chown(path, uid, uid)
        return workdir

    @staticmethod
    def _collect(proc: subprocess.Popen, limits: Limits, start: float
                 ) -> tuple[tuple[bytes, bool], tuple[bytes, bool], bool]:
        """Read both pipes up to the cap (closing a pipe that overflows) until EOF or deadline."""
        cap = int(limits.output_bytes)
        bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
        truncated = {proc.stdout: False, proc.stderr: False}
        sel = selectors.DefaultSelector()
        for stream in bufs:
            sel.register(stream, selectors.EVENT_READ)
        deadline = start + limits.timeout_s
        timed_out = False
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(remaining, 0.5)):
                stream = key.fileobj
                chunk = os.read(stream.fileno(), 65536)
                buf = bufs[stream]
                if chunk and len(buf) + len(chunk) <= cap:
                    buf += chunk
                    continue
                if chunk:  # over the cap: keep what fits and close, the writer gets EPIPE
                    buf += chunk[: cap - len(buf)]
                    truncated[stream] = True
                sel.unregister(stream)
                stream.close()
        sel.close()
        for stream in bufs:
            if not stream.closed:
                stream.close()
        if not timed_out:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        return ((bytes(bufs[proc.stdout]), truncated[proc.stdout]),
                (bytes(bufs[proc.stderr]), truncated[proc.stderr]), timed_out)

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        """The launcher dies -> its PID namespace dies with it; the cgroup catches the rest."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _verdict(self, rc: int, timed_out: bool, out: tuple[bytes, bool], err: tuple[bytes, bool],
                 hits: dict[str, int], limits: Limits, seconds: float) -> Verdict:
        signum = None
        if rc < 0:
            signum = -rc
        elif self.backend.isolated and 128 < rc < 128 + 65:
            signum = rc - 128  # both inits report a child killed by signal N as exit 128+N
        stderr = err[0].decode("utf-8", "replace")
        resource = None
        last_line = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        if timed_out:
            resource = "wall_time"
        elif signum == signal.SIGXCPU:
            resource = "cpu_time"
        elif hits["memory"]:
            resource = "memory"
        elif signum == signal.SIGXFSZ:
            resource = "file_size"
        elif hits["processes"]:
            resource = "processes"
        else:
            resource = next((r for hint, r in _STDERR_HINTS if hint in last_line), None)
        if resource is None and (out[1] or err[1]):
            resource = "output"
        return Verdict(
            exit_code=None if signum is not None or timed_out else rc,
            timed_out=timed_out,
            signal=signal.Signals(signum).name if signum else ("SIGKILL" if timed_out else None),
            resource=resource,
            stdout=out[0].decode("utf-8", "replace"), stderr=stderr,
            stdout_truncated=out[1], stderr_truncated=err[1],
            seconds=round(seconds, 4), backend=self.backend.name,
            isolated=self.backend.isolated)
