"""How a sandboxed process is isolated: bubblewrap, util-linux `unshare`, or nothing.

`bwrap` gives the strongest view: new user/pid/net/ipc/uts/mount namespaces, only /usr
(read-only) and a size-capped tmpfs working directory visible, all capabilities dropped.
Run as root, the sandbox starts bwrap as `nobody` (unprivileged user namespace) so the
program never holds host root's identity. `unshare` (always present as root) gives pid, net,
ipc, uts and mount namespaces and switches to `nobody`; the program then sees the host's
files with nobody's permissions. With neither, code runs with rlimits and a cgroup only,
which the Sandbox refuses unless `allow_unisolated=True`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

NOBODY = 65534
SANDBOX_DIR = "/sandbox"          # the program's working directory inside bwrap
PROGRAM = "prog.py"


class SandboxUnavailable(RuntimeError):
    """No isolation backend works here and unisolated execution was not allowed."""


def system_python() -> str:
    """A Python outside any venv: a venv under /tmp or /root is hidden inside the sandbox."""
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


@dataclass(frozen=True)
class Backend:
    """An isolation method; `uid` is who the program runs as (None: unchanged). bwrap and
    "none" switch to it before exec; `unshare` needs root to build namespaces and switches
    after."""

    name: str                 # "bwrap", "unshare" or "none"
    uid: int | None
    isolated: bool

    def command(self, python: str, file_fds: dict[str, int], tmpfs_bytes: int,
                status_fd: int | None) -> list[str]:
        """The argv that runs `python prog.py` isolated; bwrap copies files in from fds and
        reports its namespace init's pid as JSON on `status_fd`."""
        py = [python, "-E", "-s", "-B", PROGRAM]
        if self.name == "bwrap":
            status = ["--json-status-fd", str(status_fd)] if status_fd is not None else []
            return _bwrap_argv(python, file_fds, tmpfs_bytes) + status + ["--"] + py
        if self.name == "unshare":
            return ["unshare", "--net", "--pid", "--ipc", "--uts", "--mount", "--fork",
                    "--kill-child", "--mount-proc", "--setuid", str(self.uid), "--setgid",
                    str(self.uid), "--"] + py
        return py

    @property
    def needs_host_workdir(self) -> bool:
        return self.name != "bwrap"


def _bwrap_argv(python: str, file_fds: dict[str, int], tmpfs_bytes: int) -> list[str]:
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib32", "lib64", "libx32", "sbin"):
        host = Path("/") / top
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    prefix = Path(python).resolve().parent.parent
    if not str(prefix).startswith("/usr"):
        argv += ["--ro-bind", str(prefix), str(prefix)]
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
             "--size", str(tmpfs_bytes), "--tmpfs", SANDBOX_DIR]
    for name, fd in file_fds.items():
        argv += ["--file", str(fd), f"{SANDBOX_DIR}/{name}"]
    argv += ["--chdir", SANDBOX_DIR, "--clearenv", "--setenv", "PATH", "/usr/bin:/bin"]
    return argv


def _probe(backend: Backend) -> bool:
    """Run `print(1)` through the backend; True when it works on this kernel."""
    from .limits import Limits
    from .sandbox import Sandbox

    try:
        verdict = Sandbox(Limits(timeout_s=10), backend=backend, use_cgroup=False).run("print(1)")
    except (OSError, SandboxUnavailable):
        return False
    return verdict.exit_code == 0 and verdict.stdout.strip() == "1"


@lru_cache(maxsize=None)
def detect(allow_unisolated: bool = False) -> Backend:
    """The strongest backend that works here, probed once per process."""
    is_root = os.geteuid() == 0
    candidates: list[Backend] = []
    if shutil.which("bwrap"):
        if is_root:
            candidates.append(Backend("bwrap", NOBODY, True))
        candidates.append(Backend("bwrap", None, True))
    if is_root and shutil.which("unshare"):
        candidates.append(Backend("unshare", NOBODY, True))
    for backend in candidates:
        if _probe(backend):
            return backend
    if allow_unisolated:
        print("reforge sandbox: WARNING no namespace isolation available (install bubblewrap or "
              "run as root for unshare); running untrusted code with rlimits only",
              file=sys.stderr)
        return Backend("none", NOBODY if is_root else None, False)
    tried = ", ".join(f"{b.name}(uid={b.uid})" for b in candidates) or "nothing (no bwrap, not root)"
    raise SandboxUnavailable(
        f"no sandbox isolation works on this machine (tried {tried}); install bubblewrap "
        "(launch/install_sandbox.sh) or pass allow_unisolated=True to run without namespaces")


def bwrap_version() -> str | None:
    if not shutil.which("bwrap"):
        return None
    out = subprocess.run(["bwrap", "--version"], capture_output=True, text=True)
    return out.stdout.strip() or None
