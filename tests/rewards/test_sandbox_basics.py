"""The sandbox's ordinary behaviour, its fallback backend, refusal, and the HTTP service."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from rewards_testlib import SMALL, TEST_UID, sandbox_processes

from rewards.sandbox import (Backend, Limits, Sandbox, SandboxClient, SandboxServer,
                             SandboxUnavailable, detect)
from rewards.sandbox.server import capped_limits


def test_program_output_exit_code_stdin_and_files(sandbox):
    v = sandbox.run("import sys, helper\nprint(helper.X, sys.stdin.read().upper())\nsys.exit(3)\n",
                    files={"helper.py": "X = 41 + 1\n"}, stdin="hello")
    assert v.exit_code == 3 and v.stdout == "42 HELLO\n" and v.signal is None
    assert v.resource is None and not v.ok and not v.timed_out
    assert v.backend == "bwrap"


def test_environment_is_empty_and_user_is_unprivileged(sandbox):
    assert detect().uid == 65534  # nobody, by default
    v = sandbox.run("import os\nprint(os.getuid(), sorted(os.environ))\n")
    assert v.ok
    uid, env = v.stdout.split(" ", 1)
    assert uid == str(TEST_UID)
    assert "HOME" not in env and "REFORGE" not in env


def test_exception_is_reported_with_its_traceback(sandbox):
    v = sandbox.run("raise KeyError('boom')\n")
    assert v.exit_code == 1 and "KeyError: 'boom'" in v.stderr and v.resource is None


def test_rejects_file_names_with_paths(sandbox):
    with pytest.raises(ValueError, match="plain name"):
        sandbox.run("print(1)", files={"../x.py": ""})


@pytest.mark.parametrize("code,check", [
    ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
     lambda v: not v.ok),
    ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\nprint('bye')\n",
     lambda v: v.ok and v.stdout == "bye\n"),
    ("import time\ntime.sleep(600)\n", lambda v: v.timed_out),
    ("open('/etc/reforge_owned', 'w').write('x')\n", lambda v: v.exit_code == 1),
])
def test_unshare_backend_contains_the_worst_programs(code, check):
    box = Sandbox(SMALL, backend=Backend("unshare", TEST_UID, True))
    v = box.run(code)
    assert check(v), v
    assert v.backend == "unshare"
    assert sandbox_processes() == []
    assert box.run("print(1)").stdout == "1\n"


def test_refuses_loudly_without_isolation_unless_allowed(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")  # neither bwrap nor unshare can be found
    detect.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="allow_unisolated"):
            Sandbox(SMALL)
        box = Sandbox(SMALL, allow_unisolated=True)
        assert box.backend.name == "none" and not box.backend.isolated
        assert "WARNING no namespace isolation" in capsys.readouterr().err
        assert box.run("print(5)").stdout == "5\n"
    finally:
        detect.cache_clear()


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
    assert client.health()["backend"] == "bwrap"
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
