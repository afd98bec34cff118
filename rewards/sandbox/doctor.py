"""`reforge sandbox doctor`: which backend the sandbox would use here and why, the kernel
features it relies on, and the hostile battery run live on a backend, one line per program."""
from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path
from typing import Any, Callable

from .backends import BACKEND_ENV, NAMES, candidate, checked_backend, requested_backend, tool_version
from .battery import BATTERY_UID, LIMITS, Outcome, run_battery
from .cgroups import RunCgroup


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def kernel_features() -> dict[str, Any]:
    """What the isolating backends need from the kernel, as found on this machine."""
    cgroup = RunCgroup.create(8, 64 * 1024 * 1024) if os.geteuid() == 0 else None
    if cgroup:
        cgroup.remove()
    namespaces = sorted(p.name for p in Path("/proc/self/ns").iterdir()) if Path("/proc/self/ns").is_dir() else []
    return {
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "euid": os.geteuid(),
        "namespaces": namespaces,
        "max_user_namespaces": _read("/proc/sys/user/max_user_namespaces"),
        "unprivileged_userns_clone": _read("/proc/sys/kernel/unprivileged_userns_clone"),
        "apparmor_restrict_unprivileged_userns": _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        "cgroup": (f"v{cgroup.version} ({'pids+memory' if cgroup.memory_dir else 'pids only'})"
                   if cgroup else "not writable (rlimits and the PID namespace only)"),
        "bwrap": tool_version("bwrap"),
        "unshare": tool_version("unshare"),
    }


@dataclasses.dataclass
class BackendStatus:
    name: str
    contains: bool
    problems: list[str]


def backend_statuses() -> list[BackendStatus]:
    out = []
    for name in NAMES:
        if name == "none":
            continue
        _, problems = checked_backend(name)
        out.append(BackendStatus(name, not problems, list(problems)))
    return out


def selected(statuses: list[BackendStatus]) -> str | None:
    """The backend `Sandbox()` would use, or None when it would refuse."""
    want = requested_backend()
    if want == "none":
        return "none"
    for s in statuses:
        if s.contains and want in ("auto", s.name):
            return s.name
    return None


def battery_on(name: str, report: Callable[[Outcome], None] | None = None,
               only: list[str] | None = None) -> list[Outcome]:
    """The hostile battery on backend `name`, its programs running as BATTERY_UID when root."""
    from .sandbox import Sandbox

    backend = candidate(name) if name == "none" else checked_backend(name)[0]
    if backend.uid is not None:
        backend = dataclasses.replace(backend, uid=BATTERY_UID)
    return run_battery(Sandbox(LIMITS, backend=backend), only=only, report=report)


def feature_lines(features: dict[str, Any], statuses: list[BackendStatus], chosen: str | None) -> list[str]:
    lines = [f"kernel: {features['kernel']} (running as uid {features['euid']})",
             f"namespaces: {', '.join(features['namespaces']) or 'none visible'}",
             f"user namespaces: max {features['max_user_namespaces']}"
             + (f", unprivileged_userns_clone={features['unprivileged_userns_clone']}"
                if features["unprivileged_userns_clone"] is not None else "")
             + (f", apparmor_restrict_unprivileged_userns={features['apparmor_restrict_unprivileged_userns']}"
                if features["apparmor_restrict_unprivileged_userns"] is not None else ""),
             f"cgroups: {features['cgroup']}",
             f"bubblewrap: {features['bwrap'] or 'not installed'}",
             f"unshare: {features['unshare'] or 'not installed'}"]
    for s in statuses:
        lines.append(f"backend {s.name}: " + ("contains its probe" if s.contains
                                              else "REFUSED - " + "; ".join(s.problems)))
    requested = requested_backend()
    if chosen is None:
        lines.append(f"selected: NONE - the sandbox refuses to run code here ({BACKEND_ENV}={requested})")
    elif chosen == "none":
        lines.append(f"selected: none - WARNING no isolation, explicitly requested by {BACKEND_ENV}=none")
    else:
        lines.append(f"selected: {chosen} ({BACKEND_ENV}={requested})")
    return lines

