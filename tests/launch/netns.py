"""Run a shell script in private network, PID and mount namespaces.

Ray 2.60 swaps 127.0.0.1 for the machine's routable address unless loopback is all there
is, so cluster tests run where it is: `unshare --net` with `lo` up and 127.0.0.2 added (a
second node address). The PID namespace makes cleanup certain: when the script ends, the
kernel kills every process left in it.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

UNSHARE = ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child"]
PRELUDE = "set -euo pipefail\nip link set lo up\nip addr add 127.0.0.2/8 dev lo\n"


@functools.cache
def unavailable_reason() -> str:
    """Empty when namespaces work here, else why the cluster tests must skip."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs util-linux `unshare` and iproute2 `ip`"
    probe = subprocess.run(UNSHARE + ["bash", "-c", PRELUDE], capture_output=True, text=True)
    if probe.returncode:
        return f"cannot create private namespaces here (root needed): {probe.stderr.strip()[:200]}"
    return ""


def run_isolated(script: str, env: dict[str, str] | None = None, timeout: float = 600,
                 cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """`script` (bash) inside fresh namespaces; stdout and stderr are returned as text."""
    return subprocess.run(UNSHARE + ["bash", "-c", PRELUDE + script], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})})


def key_values(stdout: str) -> dict[str, str]:
    """The `KEY=value` lines a scenario script prints for the test to assert on."""
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line and line.split("=", 1)[0].isupper())
