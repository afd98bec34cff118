"""The hostile battery: every program ends in a verdict within its limits, leaves nothing
behind, and the sandbox works again right after it."""
from __future__ import annotations

import hashlib
import os
import socket
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from rewards.sandbox import Limits, Verdict

from rewards_testlib import SMALL, run_cgroups_with_tasks, sandbox_processes

SECRET = "reforge-secret-7f3a9c"


@dataclass
class Hostile:
    name: str
    code: str
    check: Callable[[Verdict], None]
    limits: Limits = SMALL


def failed(v: Verdict) -> None:
    assert not v.ok, v


def resource(*names: str) -> Callable[[Verdict], None]:
    def check(v: Verdict) -> None:
        assert v.resource in names, v
    return check


def sig(name: str) -> Callable[[Verdict], None]:
    def check(v: Verdict) -> None:
        assert v.signal == name and v.exit_code is None, v
    return check


def printed(text: str) -> Callable[[Verdict], None]:
    def check(v: Verdict) -> None:
        assert text in v.stdout, v
    return check


def both(*checks: Callable[[Verdict], None]) -> Callable[[Verdict], None]:
    def check(v: Verdict) -> None:
        for c in checks:
            c(v)
    return check


def no_secret(v: Verdict) -> None:
    assert SECRET not in v.stdout + v.stderr, v
    assert v.ok, v  # the program itself ran; it just could not see anything


def truncated_stdout(v: Verdict) -> None:
    assert v.stdout_truncated and len(v.stdout) == SMALL.output_bytes and v.resource == "output", v


def truncated_stderr(v: Verdict) -> None:
    assert v.stderr_truncated and len(v.stderr) == SMALL.output_bytes, v


def code(src: str) -> str:
    return textwrap.dedent(src).strip() + "\n"


PORT_HOLDER: dict[str, int] = {}

BATTERY = [
    Hostile("fork_bomb", code("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """), resource("processes", "wall_time", "cpu_time")),
    # a generous wall clock so that 1 s of CPU is reached even on a loaded machine
    Hostile("busy_loop", "while True:\n    pass\n", both(resource("cpu_time"), sig("SIGXCPU")),
            Limits(**{**SMALL.to_dict(), "timeout_s": 15.0})),
    Hostile("sleep_forever", "import time\ntime.sleep(10**6)\n",
            both(resource("wall_time"), lambda v: v.timed_out or pytest.fail(str(v)))),
    Hostile("ignore_signals_and_sleep", code("""
        import signal, time
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        while True:
            time.sleep(0.1)
        """), resource("wall_time")),
    Hostile("allocate_10gb", "b = bytearray(10 * 1024**3)\n", resource("memory")),
    Hostile("allocate_gradually", code("""
        chunks = []
        while True:
            chunks.append(bytearray(16 * 1024 * 1024))
        """), resource("memory")),
    Hostile("gigabytes_of_stdout", code("""
        import sys
        while True:
            sys.stdout.write("x" * 65536)
        """), truncated_stdout),
    Hostile("gigabytes_of_stderr", code("""
        import os
        while True:
            os.write(2, b"y" * 65536)
        """), truncated_stderr),
    Hostile("write_etc", code("""
        for path in ("/etc/passwd", "/etc/reforge_owned", "/usr/lib/reforge_owned"):
            try:
                open(path, "a").write("pwned\\n")
                print("WROTE", path)
            except OSError as e:
                print("refused", path, type(e).__name__)
        """), lambda v: ("WROTE" not in v.stdout and v.ok) or pytest.fail(str(v))),
    Hostile("write_outside_workdir", code("""
        import os
        for path in ("/tmp/reforge_escape_marker", "/reforge_escape_marker", "../reforge_escape_marker"):
            try:
                open(path, "w").write("x")
                print("wrote", path)
            except OSError as e:
                print("refused", path, type(e).__name__)
        """), lambda v: v.ok or pytest.fail(str(v))),
    Hostile("read_parent_environment", code("""
        import os
        print(dict(os.environ))
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    print(open(f"/proc/{pid}/environ", "rb").read())
                except OSError:
                    pass
        """), no_secret),
    Hostile("read_root_and_project_files", code("""
        import os
        for path in ("/root", "/home", "/work", "/etc/shadow", "/root/.ray/auth_token"):
            try:
                print(path, os.listdir(path) if os.path.isdir(path) else open(path).read())
            except OSError as e:
                print("refused", path, type(e).__name__)
        """), lambda v: (v.ok and "/root [" not in v.stdout and "/work [" not in v.stdout
                         and "/etc/shadow root" not in v.stdout) or pytest.fail(str(v))),
    Hostile("symlink_escape", code("""
        import os
        os.symlink("/proc/1/root/root", "escape")
        os.symlink("/etc/shadow", "shadow")
        for path in ("escape", "shadow", "/proc/1/root/etc/shadow"):
            try:
                print(path, os.listdir(path) if os.path.isdir(path) else open(path).read())
            except OSError as e:
                print("refused", path, type(e).__name__)
        """), lambda v: (v.ok and v.stdout.count("refused") == 3) or pytest.fail(str(v))),
    Hostile("connect_to_host_server", code("""
        import socket
        s = socket.socket()
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", PORT))
            print("CONNECTED")
        except OSError as e:
            print("refused", type(e).__name__)
        try:
            socket.getaddrinfo("example.com", 80)
            print("RESOLVED")
        except OSError as e:
            print("no dns", type(e).__name__)
        """), lambda v: (v.ok and "CONNECTED" not in v.stdout and "RESOLVED" not in v.stdout)
        or pytest.fail(str(v))),
    Hostile("background_daemon", code("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for fd in (0, 1, 2):
                    os.close(fd)
                time.sleep(600)
            os._exit(0)
        print("parent leaves")
        """), printed("parent leaves")),
    Hostile("orphaned_subprocess", code("""
        import subprocess
        subprocess.Popen(["sleep", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        print("spawned")
        """), printed("spawned")),
    Hostile("kill_the_parent", code("""
        import os, signal
        for target in (os.getppid(), 1, -1):
            try:
                os.kill(target, signal.SIGKILL)
                print("sent", target)
            except OSError as e:
                print("refused", target, type(e).__name__)
        print("still here")
        """), lambda v: v.exit_code is not None or v.signal == "SIGKILL" or pytest.fail(str(v))),
    Hostile("raise_own_rlimits", code("""
        import resource
        for lim in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NOFILE,
                    resource.RLIMIT_NPROC, resource.RLIMIT_FSIZE):
            try:
                resource.setrlimit(lim, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                print("RAISED", lim)
            except (ValueError, OSError) as e:
                print("refused", lim, type(e).__name__)
        """), lambda v: (v.ok and "RAISED" not in v.stdout) or pytest.fail(str(v))),
    Hostile("become_root", code("""
        import os
        try:
            os.setuid(0)
            print("ROOT")
        except OSError as e:
            print("refused", type(e).__name__)
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        print("mount", libc.mount(b"none", b"/usr", b"tmpfs", 0, None), ctypes.get_errno())
        print("reboot", libc.reboot(0x4321fedc), ctypes.get_errno())
        try:
            open("/proc/sysrq-trigger", "w").write("s")
            print("SYSRQ")
        except OSError as e:
            print("refused sysrq", type(e).__name__)
        """), lambda v: (v.ok and "ROOT" not in v.stdout and "SYSRQ" not in v.stdout
                         and "mount -1" in v.stdout and "reboot -1" in v.stdout)
        or pytest.fail(str(v))),
    Hostile("exhaust_file_descriptors", code("""
        files = []
        while True:
            files.append(open("/dev/null"))
        """), resource("open_files")),
    Hostile("fill_the_disk", code("""
        i = 0
        while True:
            with open(f"fill{i}", "wb") as f:
                f.write(b"z" * (1024 * 1024))
            i += 1
        """), resource("disk", "file_size")),
    Hostile("one_huge_file", code("""
        with open("huge", "wb") as f:
            while True:
                f.write(b"z" * (1024 * 1024))
        """), resource("file_size", "disk")),
    Hostile("deep_recursion", code("""
        import sys
        sys.setrecursionlimit(10**9)
        def f(n):
            return f(n + 1) + 1
        f(0)
        """), lambda v: (not v.ok and v.seconds < SMALL.timeout_s + 1) or pytest.fail(str(v))),
    Hostile("ctypes_segfault", "import ctypes\nctypes.string_at(0)\n", sig("SIGSEGV")),
    Hostile("thread_bomb", code("""
        import threading, time
        while True:
            threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
        """), resource("processes", "memory")),
    Hostile("fork_then_exit_leaving_busy_children", code("""
        import os
        for _ in range(8):
            if os.fork() == 0:
                while True:
                    pass
        print("parent done")
        """), printed("parent done")),
    Hostile("close_stdout_and_hang", code("""
        import os, time
        os.close(1)
        os.close(2)
        time.sleep(600)
        """), resource("wall_time")),
]


@pytest.fixture(scope="module")
def host_server():
    """A TCP server on the host's loopback that counts connections the sandbox makes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(srv.accept())
            except socket.timeout:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    thread.join()
    srv.close()


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("hostile", BATTERY, ids=[h.name for h in BATTERY])
def test_hostile_program_is_contained(hostile: Hostile, sandbox, host_server, monkeypatch):
    port, accepted = host_server
    monkeypatch.setenv("REFORGE_SECRET", SECRET)
    passwd = _digest("/etc/passwd")
    src = hostile.code.replace("PORT", str(port))
    started = time.monotonic()
    verdict = sandbox.run(src, limits=hostile.limits)
    elapsed = time.monotonic() - started
    hostile.check(verdict)
    assert elapsed < hostile.limits.timeout_s + 5.0, f"{hostile.name} took {elapsed:.1f}s"  # slack: loaded CI
    assert verdict.seconds <= elapsed
    # the host is unaffected
    assert _digest("/etc/passwd") == passwd
    assert not Path("/tmp/reforge_escape_marker").exists()
    assert not Path("/reforge_escape_marker").exists()
    assert not Path("/etc/reforge_owned").exists()
    assert not accepted, "the sandbox reached a server on the host's loopback"
    # nothing is left behind, and the next run works
    assert sandbox_processes() == [], f"{hostile.name} left processes behind"
    assert run_cgroups_with_tasks() == []
    after = sandbox.run("print(6 * 7)")
    assert after.ok and after.stdout == "42\n", after


def test_battery_is_at_least_twenty_programs():
    assert len(BATTERY) >= 20


def test_every_run_cgroup_is_removed():
    from rewards.sandbox.cgroups import remove_pending

    assert remove_pending(wait_s=15.0)
