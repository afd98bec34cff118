"""launch/install_sandbox.sh cannot degrade silently: where bubblewrap cannot be installed and
no backend contains code, it retries with a bounded wait for the package manager's lock, then
exits non-zero saying what to run; REFORGE_SANDBOX_BACKEND=none is the only way past, loudly."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE_APT = """#!/bin/sh
echo "$@" >> {calls}
echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1 (apt-get)" >&2
exit 100
"""


def _run(tmp_path: Path, extra_env: dict[str, str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The script on a PATH with the basic tools and an apt-get that always finds the lock
    held, but neither bwrap nor unshare."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("id", "mktemp", "tail", "sleep", "rm", "cat"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    calls = tmp_path / "apt-calls"
    apt = bin_dir / "apt-get"
    apt.write_text(FAKE_APT.format(calls=calls))
    apt.chmod(0o755)
    env = {"PATH": str(bin_dir), "REFORGE_APT_RETRY_SLEEP": "0", "REFORGE_APT_LOCK_WAIT": "7",
           "PYTHONPATH": str(ROOT), **extra_env}
    out = subprocess.run(["/bin/sh", str(ROOT / "launch/install_sandbox.sh"), sys.executable],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return out, calls.read_text().splitlines() if calls.exists() else []


def test_install_fails_with_what_to_run_when_nothing_can_isolate(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the apt retry path is the root path; non-root fails earlier")
    out, calls = _run(tmp_path, {})
    assert out.returncode == 1, out.stderr
    installs = [c for c in calls if "install" in c]
    assert len(installs) == 3 and all("DPkg::Lock::Timeout=7" in c for c in calls)
    assert "attempt 3/3 to install bubblewrap failed: E: Could not get lock" in out.stderr
    assert "FAILED: no sandbox backend can contain untrusted code" in out.stderr
    assert "apt-get install bubblewrap" in out.stderr and "REFORGE_SANDBOX_BACKEND=none" in out.stderr
    assert "backend unshare: REFUSED" in out.stderr


def test_install_passes_without_isolation_only_when_asked_loudly(tmp_path):
    out, _ = _run(tmp_path, {"REFORGE_SANDBOX_BACKEND": "none"})
    assert out.returncode == 0
    assert "WARNING: no sandbox backend isolates code" in out.stderr


def test_install_passes_quietly_where_a_backend_contains_code():
    if not shutil.which("bwrap"):
        pytest.skip("would run apt-get install; `make install` does that, not the tests")
    out = subprocess.run(["/bin/sh", "launch/install_sandbox.sh", sys.executable], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "FAILED" not in out.stderr, out.stderr
