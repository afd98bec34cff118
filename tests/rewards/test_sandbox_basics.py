"""The sandbox's ordinary behaviour on each backend, backend choice, refusal of a backend
that does not contain code, the loud unisolated opt-in, and the HTTP service."""
from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from rewards_testlib import SMALL, TEST_UID

from rewards.sandbox import (Limits, Sandbox, SandboxClient, SandboxServer,
                             SandboxUnavailable, detect)
from rewards.sandbox.backends import BACKEND_ENV, candidate, checked_backend, forget_probes
from rewards.sandbox.server import capped_limits


def test_program_output_exit_code_stdin_and_files(each_sandbox):
    v = each_sandbox.run("import sys, helper\nprint(helper.X, sys.stdin.read().upper())\nsys.exit(3)\n",
                         files={"helper.py": "X = 41 + 1\n"}, stdin="hello")
    assert v.exit_code == 3 and v.stdout == "42 HELLO\n" and v.signal is None
    assert v.resource is None and not v.ok and not v.timed_out
    assert v.backend == each_sandbox.backend.name and v.isolated


def test_auto_prefers_bubblewrap_and_runs_as_nobody(sandbox):
    if shutil.which("bwrap"):
        assert sandbox.backend.name == "bwrap"
    assert detect().uid == 65534  # nobody, by default, when we are root


def test_environment_is_empty_and_user_is_unprivileged(each_sandbox):
    v = each_sandbox.run("import os\nprint(os.getuid(), os.getpid(), sorted(os.environ))\n")
    assert v.ok
    uid, pid, env = v.stdout.split(" ", 2)
    assert uid == str(TEST_UID) and int(pid) <= 3  # its own PID namespace
    assert "HOME" not in env and "REFORGE" not in env


def test_exception_is_reported_with_its_traceback(each_sandbox):
    v = each_sandbox.run("raise KeyError('boom')\n")
    assert v.exit_code == 1 and "KeyError: 'boom'" in v.stderr and v.resource is None


def test_rejects_file_names_with_paths(sandbox):
    with pytest.raises(ValueError, match="plain name"):
        sandbox.run("print(1)", files={"../x.py": ""})


def test_backend_is_chosen_by_name_or_environment(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "unshare")
    assert Sandbox(SMALL).backend.name == "unshare"
    monkeypatch.setenv(BACKEND_ENV, "chroot")
    with pytest.raises(ValueError, match=f"from {BACKEND_ENV}"):
        Sandbox(SMALL)
    monkeypatch.delenv(BACKEND_ENV)
    assert Sandbox(SMALL, backend="unshare").backend.name == "unshare"


def test_refuses_loudly_without_isolation_unless_asked(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")  # neither bwrap nor unshare can be found
    forget_probes()
    try:
        with pytest.raises(SandboxUnavailable, match=f"{BACKEND_ENV}=none"):
            Sandbox(SMALL)
        box = Sandbox(SMALL, allow_unisolated=True)
        assert box.backend.name == "none" and not box.backend.isolated
        assert "WITHOUT namespace isolation" in capsys.readouterr().err
        monkeypatch.setenv(BACKEND_ENV, "none")
        box = Sandbox(SMALL, backend=dataclasses.replace(candidate("none"), uid=TEST_UID))
        assert "WITHOUT namespace isolation" in capsys.readouterr().err
        v = box.run("print(5)")
        assert v.stdout == "5\n" and v.backend == "none" and v.isolated is False
    finally:
        forget_probes()


FAKE_BWRAP = """#!/usr/bin/python3
# a `bwrap` that copies the files in and runs the program, but isolates nothing
import os, sys
args, workdir = sys.argv[1:], WORKDIR
while args[0] != "--":
    if args[0] == "--file":
        with open(os.path.join(workdir, os.path.basename(args[2])), "wb") as f:
            f.write(os.read(int(args[1]), 1 << 20))
        args = args[3:]
    else:
        args = args[1:]
os.chdir(workdir)
os.execv(args[1], args[1:])
"""


@pytest.fixture()
def open_dir():
    """A directory the sandbox's unprivileged uid can reach (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="reforge-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_backend_that_runs_code_but_does_not_contain_it_is_refused(open_dir, monkeypatch):
    workdir = open_dir / "work"
    workdir.mkdir()
    workdir.chmod(0o777)
    fake = open_dir / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text(FAKE_BWRAP.replace("WORKDIR", repr(str(workdir))))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    forget_probes()
    try:
        _, problems = checked_backend("bwrap")
        assert any("PID namespace" in p for p in problems), problems
        assert any("network interfaces" in p for p in problems), problems
        with pytest.raises(SandboxUnavailable, match="bwrap: .*shares the host's PID namespace"):
            Sandbox(SMALL, backend="bwrap")
        assert Sandbox(SMALL).backend.name == "unshare"  # auto moves on to one that contains
    finally:
        forget_probes()


def test_limits_validation_names_the_field():
    with pytest.raises(ValueError, match="timeout_s"):
        Limits(timeout_s=0)
    with pytest.raises(ValueError, match="unknown sandbox limit"):
        Limits.from_dict({"walltime": 3})
    capped = capped_limits({"timeout_s": 999, "memory_mb": 64}, SMALL)
    assert capped.timeout_s == SMALL.timeout_s and capped.memory_mb == 64


@pytest.fixture()
def server(sandbox):
    srv = SandboxServer(sandbox, max_concurrency=1)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_server_runs_programs_and_pushes_back_when_full(server):
    client = SandboxClient(server.url, wait_s=30)
    assert client.health()["backend"] == server.sandbox.backend.name
    v = client.run("print(sum(range(10)))")
    assert v.ok and v.stdout == "45\n"
    # one slot: a second caller gets 503 while a slow program holds it, and succeeds later
    impatient = SandboxClient(server.url, wait_s=0.0)
    slow = threading.Thread(target=client.run, args=("import time\ntime.sleep(1.0)\n",))
    slow.start()
    deadline = time.monotonic() + 30
    while client.health()["running"] == 0:  # until the slow program holds the only slot
        assert time.monotonic() < deadline, "the slow program never started"
        time.sleep(0.02)
    with pytest.raises(Exception, match="busy"):
        impatient.run("print(1)")
    assert client.run("print(2)").stdout == "2\n"  # the patient client retried and got in
    slow.join()
    assert client.health()["rejected"] >= 1


def test_server_rejects_bad_requests_with_a_reason(server):
    req = urllib.request.Request(f"{server.url}/run", method="POST",
                                 data=json.dumps({"code": "print(1)", "limits": {"bogus": 1}}).encode())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400
    assert "unknown sandbox limit(s) ['bogus']" in json.loads(err.value.read())["error"]
