"""How a sandboxed process is isolated: bubblewrap, hardened util-linux `unshare`, or nothing.

Both isolating backends build the same view: new user/pid/net/ipc/uts/mount/cgroup
namespaces; a read-only root holding only /usr (and the /bin, /lib... entries that point
into it) read-only, a minimal /dev, a fresh /proc, a size-capped private /tmp and working
directory; no capability left (bounding and ambient sets emptied, no_new_privs); an
unprivileged uid (as root, the sandbox drops to `nobody` before creating the namespaces, so
the program never holds host root's identity). `bwrap` builds it itself; `unshare` creates
the namespaces and hands over to nsinit.py, which builds the same root and drops the same
privileges. A backend is used only after a probe run shows it contains its program
(`contained`); otherwise the sandbox refuses to run.

"none" runs code with rlimits and a cgroup only. It is never picked silently: only an
explicit request (backend="none", `--backend none`, REFORGE_SANDBOX_BACKEND=none) or
`allow_unisolated=True` selects it, a warning is printed, and every Verdict says
`isolated: false`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

NOBODY = 65534
SANDBOX_DIR = "/sandbox"          # the program's working directory inside the sandbox
PROGRAM = "prog.py"
BACKEND_ENV = "REFORGE_SANDBOX_BACKEND"  # auto (default) | bwrap | unshare | none
NAMES = ("bwrap", "unshare", "none")
ROOT_ENTRIES = {"bin", "dev", "lib", "lib32", "lib64", "libx32", "proc", "sandbox", "sbin",
                "tmp", "usr"}    # all a contained program may see in "/" (plus a python prefix)
UNISOLATED_WARNING = ("reforge sandbox: WARNING running untrusted code WITHOUT namespace "
                      "isolation (backend 'none'): it can read your files, reach your network "
                      "and leave processes behind; every verdict records isolated=false")
NSINIT = Path(__file__).with_name("nsinit.py")


class SandboxUnavailable(RuntimeError):
    """No isolation backend works here and unisolated execution was not allowed."""


def system_python() -> str:
    """A Python outside any venv: a venv under /tmp or /root is hidden inside the sandbox."""
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def root_layout(python: str) -> tuple[list[str], dict[str, str]]:
    """What the sandbox's root holds: read-only binds and symlinks (host /bin -> usr/bin...)."""
    binds, links = ["/usr"], {}
    for top in ("bin", "lib", "lib32", "lib64", "libx32", "sbin"):
        host = Path("/") / top
        if host.is_symlink():
            links[str(host)] = os.readlink(host)
        elif host.is_dir():
            binds.append(str(host))
    prefix = Path(python).resolve().parent.parent
    if not str(prefix).startswith("/usr"):
        if str(prefix).startswith("/tmp"):
            raise SandboxUnavailable(f"the sandbox's python {python} lives under /tmp, which the "
                                     "sandbox replaces; use a python installed elsewhere")
        binds.append(str(prefix))
    return binds, links


@dataclass(frozen=True)
class Backend:
    """An isolation method; `uid` is who the program runs as (None: unchanged). The sandbox
    switches to it before starting the backend, so namespaces are created unprivileged."""

    name: str                 # "bwrap", "unshare" or "none"
    uid: int | None
    isolated: bool

    def command(self, python: str, file_fds: dict[str, int], tmpfs_bytes: int,
                status_fd: int | None) -> list[str]:
        """The argv that runs `python prog.py` isolated; the isolating backends copy the
        files in from fds; bwrap reports its namespace init's pid as JSON on `status_fd`."""
        py = [python, "-E", "-s", "-B", PROGRAM]
        if self.name == "bwrap":
            status = ["--json-status-fd", str(status_fd)] if status_fd is not None else []
            return _bwrap_argv(python, file_fds, tmpfs_bytes) + status + ["--"] + py
        if self.name == "unshare":
            binds, links = root_layout(python)
            cfg = {"files": file_fds, "tmpfs_bytes": tmpfs_bytes, "ro_binds": binds,
                   "symlinks": links, "workdir": SANDBOX_DIR, "argv": py}
            return [shutil.which("unshare") or "unshare", "--user", "--map-current-user", "--keep-caps", "--mount",
                    "--pid", "--net", "--ipc", "--uts", "--cgroup", "--fork", "--kill-child",
                    "--", python, "-I", "-c", NSINIT.read_text(), json.dumps(cfg)]
        return py

    @property
    def needs_host_workdir(self) -> bool:
        return not self.isolated


def _bwrap_argv(python: str, file_fds: dict[str, int], tmpfs_bytes: int) -> list[str]:
    argv = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--hostname", "sandbox"]
    binds, links = root_layout(python)
    for src in binds:
        argv += ["--ro-bind", src, src]
    for link, target in links.items():
        argv += ["--symlink", target, link]
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
             "--size", str(tmpfs_bytes), "--tmpfs", SANDBOX_DIR]
    for name, fd in file_fds.items():
        argv += ["--file", str(fd), f"{SANDBOX_DIR}/{name}"]
    argv += ["--remount-ro", "/", "--chdir", SANDBOX_DIR, "--clearenv",
             "--setenv", "PATH", "/usr/bin:/bin"]
    return argv


PROBE = """
import json, os, socket
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print(json.dumps({"uid": os.getuid(), "pid": os.getpid(), "root": sorted(os.listdir("/")),
                  "hostname": socket.gethostname(), "interfaces": [n for _, n in socket.if_nameindex()],
                  "cap_eff": int(status["CapEff"], 16), "cap_bnd": int(status["CapBnd"], 16),
                  "no_new_privs": int(status["NoNewPrivs"])}))
"""


def containment_problems(facts: dict, python: str) -> list[str]:
    """What a probe program could do that a contained one cannot; [] when contained."""
    allowed = ROOT_ENTRIES | {p.strip("/").split("/")[0] for p in root_layout(python)[0]}
    problems = []
    if facts["uid"] == 0:
        problems.append("runs as uid 0")
    if facts["cap_eff"] or facts["cap_bnd"]:
        problems.append(f"holds capabilities (effective {facts['cap_eff']:#x}, bounding {facts['cap_bnd']:#x})")
    if not facts["no_new_privs"]:
        problems.append("may gain privileges (no_new_privs unset)")
    if facts["pid"] > 3:
        problems.append(f"shares the host's PID namespace (pid {facts['pid']})")
    if set(facts["interfaces"]) - {"lo"}:
        problems.append(f"sees network interfaces {sorted(set(facts['interfaces']) - {'lo'})}")
    if facts["hostname"] != "sandbox":
        problems.append("shares the host's UTS namespace")
    if extra := sorted(set(facts["root"]) - allowed):
        problems.append(f"sees host paths {extra[:6]}")
    return problems


def probe(backend: Backend) -> list[str]:
    """Run the containment probe through `backend`: [] when it works and contains, else why not."""
    from .limits import Limits
    from .sandbox import Sandbox

    try:
        verdict = Sandbox(Limits(timeout_s=20), backend=backend, use_cgroup=False).run(PROBE)
    except (OSError, SandboxUnavailable) as e:
        return [f"cannot start: {e}"]
    if verdict.exit_code != 0:
        tail = (verdict.stderr.strip().splitlines() or ["no output"])[-1]
        return [f"probe failed (exit {verdict.exit_code}, signal {verdict.signal}): {tail}"]
    if backend.name == "none":
        return []
    return containment_problems(json.loads(verdict.stdout), system_python())


def candidate(name: str) -> Backend:
    """The backend called `name`, running as `nobody` when we are root."""
    if name not in NAMES:
        raise ValueError(f"sandbox backend must be one of {NAMES} or 'auto', got {name!r} "
                         f"(from {BACKEND_ENV} or the caller)")
    uid = NOBODY if os.geteuid() == 0 else None
    return Backend(name, uid, name != "none")


def requested_backend() -> str:
    return os.environ.get(BACKEND_ENV, "auto").strip() or "auto"


@lru_cache(maxsize=None)
def checked_backend(name: str) -> tuple[Backend, tuple[str, ...]]:
    """Backend `name` and what its probe found wrong (empty: it contains); cached."""
    backend = candidate(name)
    missing = {"bwrap": "bwrap", "unshare": "unshare"}.get(name)
    if missing and not shutil.which(missing):
        return backend, (f"`{missing}` is not installed",)
    return backend, tuple(probe(backend))


def warn_unisolated() -> None:
    print(UNISOLATED_WARNING, file=sys.stderr, flush=True)


def detect(allow_unisolated: bool = False, name: str | None = None) -> Backend:
    """The backend to use: `name` (or $REFORGE_SANDBOX_BACKEND, default auto). auto takes the
    first of bwrap, unshare that contains its probe; a named one is used only if it does.
    Probes run once per process."""
    name = name or requested_backend()
    if name == "none":
        return candidate("none")
    order = ("bwrap", "unshare") if name == "auto" else (name,)
    reasons = []
    for each in order:
        backend, problems = checked_backend(each)
        if not problems:
            return backend
        reasons.append(f"{each}: {'; '.join(problems)}")
    if allow_unisolated:
        return candidate("none")
    raise SandboxUnavailable(
        f"no sandbox backend contains untrusted code on this machine ({' | '.join(reasons)}); "
        "install bubblewrap (sh launch/install_sandbox.sh, or apt-get install bubblewrap), "
        "check with `reforge sandbox doctor`, or opt in to running WITHOUT isolation with "
        f"{BACKEND_ENV}=none")


def forget_probes() -> None:
    """Probe again on the next `detect` (after installing bubblewrap, or in tests)."""
    checked_backend.cache_clear()


def tool_version(tool: str) -> str | None:
    if not shutil.which(tool):
        return None
    out = subprocess.run([tool, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else None


def bwrap_version() -> str | None:
    return tool_version("bwrap")
