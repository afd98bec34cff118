"""The hostile battery: programs that try to escape, exhaust or outlive the sandbox.

Each program must end in a verdict within its limits, leave the host as it was (no file
written outside the sandbox, no connection to a host server, no secret read, no process or
cgroup left behind) and leave the sandbox working for the next run. The tests
(tests/rewards/test_sandbox_hostile.py) and `reforge sandbox doctor` run the same list.
Every run uses its own marker names, so an escape in one run cannot fail the next.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import socket
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from .limits import Limits
from .verdict import Verdict

LIMITS = Limits(timeout_s=2.0, cpu_s=1, memory_mb=128, file_size_mb=4, open_files=32,
                processes=32, workdir_mb=8, output_bytes=4096)
BATTERY_UID = 61999  # the battery's programs run as this uid, so other sandbox users on the
                     # machine (concurrent runs as `nobody`) never count as its leftovers

Check = Callable[[Verdict], str]  # "" when the verdict is as expected, else what is wrong


def _code(src: str) -> str:
    return textwrap.dedent(src).strip() + "\n"


def _all(*checks: Check) -> Check:
    return lambda v: next((p for p in (c(v) for c in checks) if p), "")


def _resource(*names: str) -> Check:
    return lambda v: "" if v.resource in names else f"expected resource in {names}, got {v.resource!r}"


def _signal(name: str) -> Check:
    return lambda v: "" if v.signal == name and v.exit_code is None else f"expected signal {name}"


def _printed(text: str) -> Check:
    return lambda v: "" if text in v.stdout else f"stdout lacks {text!r}"


def _ran(v: Verdict) -> str:
    return "" if v.ok else "the program itself did not finish normally"


def _lacks(*texts: str) -> Check:
    return lambda v: next((f"output shows {t!r}" for t in texts if t in v.stdout + v.stderr), "")


def _truncated(stream: str) -> Check:
    def check(v: Verdict) -> str:
        text, cut = (v.stdout, v.stdout_truncated) if stream == "stdout" else (v.stderr, v.stderr_truncated)
        return "" if cut and len(text) == LIMITS.output_bytes else f"{stream} not cut at the cap"
    return check


@dataclass(frozen=True)
class Hostile:
    """One program; PORT and TOKEN in its code are replaced per run (see HostWatch)."""

    name: str
    code: str
    check: Check
    limits: Limits = LIMITS


BATTERY: list[Hostile] = [
    Hostile("fork_bomb", _code("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """), _resource("processes", "wall_time", "cpu_time")),
    # a generous wall clock so that 1 s of CPU is reached even on a loaded machine
    Hostile("busy_loop", "while True:\n    pass\n", _all(_resource("cpu_time"), _signal("SIGXCPU")),
            replace(LIMITS, timeout_s=15.0)),
    Hostile("sleep_forever", "import time\ntime.sleep(10**6)\n",
            _all(_resource("wall_time"), lambda v: "" if v.timed_out else "not timed out")),
    Hostile("ignore_signals_and_sleep", _code("""
        import signal, time
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        while True:
            time.sleep(0.1)
        """), _resource("wall_time")),
    Hostile("allocate_10gb", "b = bytearray(10 * 1024**3)\n", _resource("memory")),
    Hostile("allocate_gradually", _code("""
        chunks = []
        while True:
            chunks.append(bytearray(16 * 1024 * 1024))
        """), _resource("memory")),
    Hostile("gigabytes_of_stdout", _code("""
        import sys
        while True:
            sys.stdout.write("x" * 65536)
        """), _all(_truncated("stdout"), _resource("output"))),
    Hostile("gigabytes_of_stderr", _code("""
        import os
        while True:
            os.write(2, b"y" * 65536)
        """), _truncated("stderr")),
    Hostile("write_etc", _code("""
        for path in ("/etc/passwd", "/etc/reforge_owned-TOKEN", "/usr/lib/reforge_owned-TOKEN"):
            try:
                open(path, "a").write("pwned\\n")
                print("WROTE", path)
            except OSError as e:
                print("refused", path, type(e).__name__)
        """), _all(_ran, _lacks("WROTE"))),
    Hostile("write_outside_workdir", _code("""
        for path in ("/tmp/reforge_escape_marker-TOKEN", "/reforge_escape_marker-TOKEN",
                     "../reforge_escape_marker-TOKEN"):
            try:
                open(path, "w").write("x")
                print("wrote", path)
            except OSError as e:
                print("refused", path, type(e).__name__)
        """), _ran),  # the host-side markers are checked by HostWatch
    Hostile("read_parent_environment", _code("""
        import os
        print(dict(os.environ))
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    print(open(f"/proc/{pid}/environ", "rb").read())
                except OSError:
                    pass
        """), _ran),  # HostWatch looks for the secret in every program's output
    Hostile("read_root_and_project_files", _code("""
        import os
        for path in ("/root", "/home", "/work", "/etc/shadow", "/etc/passwd", "/root/.ray/auth_token"):
            try:
                print(path, os.listdir(path) if os.path.isdir(path) else open(path).read())
            except OSError as e:
                print("refused", path, type(e).__name__)
        """), _all(_ran, _lacks("/root [", "/home [", "/work [", "/etc/shadow root", "/etc/passwd root"))),
    Hostile("symlink_escape", _code("""
        import os
        os.symlink("/proc/1/root/root", "escape")
        os.symlink("/etc/shadow", "shadow")
        for path in ("escape", "shadow", "/proc/1/root/etc/shadow"):
            try:
                print(path, os.listdir(path) if os.path.isdir(path) else open(path).read())
            except OSError as e:
                print("refused", path, type(e).__name__)
        """), _all(_ran, lambda v: "" if v.stdout.count("refused") == 3 else "a link led out")),
    Hostile("connect_to_host_server", _code("""
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
        """), _all(_ran, _lacks("CONNECTED", "RESOLVED"))),
    Hostile("background_daemon", _code("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for fd in (0, 1, 2):
                    os.close(fd)
                time.sleep(600)
            os._exit(0)
        print("parent leaves")
        """), _printed("parent leaves")),
    Hostile("orphaned_subprocess", _code("""
        import subprocess
        subprocess.Popen(["sleep", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        print("spawned")
        """), _printed("spawned")),
    Hostile("kill_the_parent", _code("""
        import os, signal
        for target in (os.getppid(), 1, -1):
            try:
                os.kill(target, signal.SIGKILL)
                print("sent", target)
            except OSError as e:
                print("refused", target, type(e).__name__)
        print("still here")
        """), lambda v: "" if v.exit_code is not None or v.signal == "SIGKILL" else "odd ending"),
    Hostile("raise_own_rlimits", _code("""
        import resource
        for lim in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NOFILE,
                    resource.RLIMIT_NPROC, resource.RLIMIT_FSIZE):
            try:
                resource.setrlimit(lim, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                print("RAISED", lim)
            except (ValueError, OSError) as e:
                print("refused", lim, type(e).__name__)
        """), _all(_ran, _lacks("RAISED"))),
    Hostile("become_root", _code("""
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
        """), _all(_ran, _lacks("ROOT", "SYSRQ"), _printed("mount -1"), _printed("reboot -1"))),
    Hostile("exhaust_file_descriptors", _code("""
        files = []
        while True:
            files.append(open("/dev/null"))
        """), _resource("open_files")),
    Hostile("fill_the_disk", _code("""
        i = 0
        while True:
            with open(f"fill{i}", "wb") as f:
                f.write(b"z" * (1024 * 1024))
            i += 1
        """), _resource("disk", "file_size")),
    Hostile("one_huge_file", _code("""
        with open("huge", "wb") as f:
            while True:
                f.write(b"z" * (1024 * 1024))
        """), _resource("file_size", "disk")),
    Hostile("deep_recursion", _code("""
        import sys
        sys.setrecursionlimit(10**9)
        def f(n):
            return f(n + 1) + 1
        f(0)
        """), lambda v: "" if not v.ok and v.seconds < LIMITS.timeout_s + 1 else "recursion not stopped"),
    Hostile("ctypes_segfault", "import ctypes\nctypes.string_at(0)\n", _signal("SIGSEGV")),
    Hostile("thread_bomb", _code("""
        import threading, time
        while True:
            threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
        """), _resource("processes", "memory")),
    Hostile("fork_then_exit_leaving_busy_children", _code("""
        import os
        for _ in range(8):
            if os.fork() == 0:
                while True:
                    pass
        print("parent done")
        """), _printed("parent done")),
    Hostile("close_stdout_and_hang", _code("""
        import os, time
        os.close(1)
        os.close(2)
        time.sleep(600)
        """), _resource("wall_time")),
]


def processes_of(uid: int) -> list[int]:
    """Live (non-zombie) processes owned by `uid` (zombies await their reaper, they run nothing)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)] and fields.get("State", " Z").split()[0] != "Z":
            found.append(int(status.parent.name))
    return found


def lingering_processes(uid: int, grace_s: float = 3.0) -> list[int]:
    """Processes of `uid` still alive after `grace_s`: one SIGKILLed at the wall-clock limit
    takes a moment to exit on a loaded machine; an escaped one is still there afterwards."""
    deadline = time.monotonic() + grace_s
    while (left := processes_of(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@dataclass
class HostWatch:
    """The host side of one battery run: a loopback server counting connections from the
    sandbox, a secret in our environment, unique marker paths; `problems()` says what leaked,
    `cleanup()` removes any marker an escape left."""

    token: str = field(default_factory=lambda: secrets.token_hex(8))
    secret: str = field(default_factory=lambda: "reforge-secret-" + secrets.token_hex(8))
    accepted: list[object] = field(default_factory=list)
    port: int = 0
    passwd: str = ""

    def markers(self) -> list[Path]:
        names = (f"reforge_escape_marker-{self.token}", f"reforge_owned-{self.token}")
        dirs = {Path("/tmp"), Path("/"), Path(tempfile.gettempdir()), Path("/etc"), Path("/usr/lib")}
        return [d / n for d in sorted(dirs) for n in names]

    def program(self, hostile: Hostile) -> str:
        return hostile.code.replace("PORT", str(self.port)).replace("TOKEN", self.token)

    @contextlib.contextmanager
    def active(self) -> Iterator["HostWatch"]:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.settimeout(0.2)
        self.port = srv.getsockname()[1]
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                    self.accepted.append(conn)
                    conn.close()
                except socket.timeout:
                    pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        old = os.environ.get("REFORGE_SECRET")
        os.environ["REFORGE_SECRET"] = self.secret
        self.passwd = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
        try:
            yield self
        finally:
            if old is None:
                os.environ.pop("REFORGE_SECRET", None)
            else:
                os.environ["REFORGE_SECRET"] = old
            stop.set()
            thread.join()
            srv.close()
            self.cleanup()

    def problems(self, uid: int | None) -> list[str]:
        found = [f"wrote {m}" for m in self.markers() if m.exists()]
        if hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() != self.passwd:
            found.append("changed /etc/passwd")
        if self.accepted:
            found.append(f"reached a server on the host's loopback ({len(self.accepted)} connection(s))")
            self.accepted.clear()
        if uid is not None and (left := lingering_processes(uid)):
            found.append(f"left {len(left)} process(es) behind")
        self.cleanup()
        return found

    def cleanup(self) -> None:
        for marker in self.markers():
            marker.unlink(missing_ok=True)


@dataclass
class Outcome:
    """One program's result: `problems` is empty when it was contained."""

    name: str
    problems: list[str]
    verdict: Verdict | None
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.problems

    def line(self) -> str:
        what = "PASS" if self.passed else "FAIL"
        v = self.verdict
        ending = (f"resource={v.resource} signal={v.signal} exit={v.exit_code}" if v else "no verdict")
        detail = f" -- {'; '.join(self.problems)}" if self.problems else ""
        return f"{what} {self.name:<38} {self.seconds:6.2f} s  {ending}{detail}"


def run_one(sandbox, hostile: Hostile, watch: HostWatch) -> Outcome:
    """Run one program through `sandbox` and judge it and the host afterwards."""
    started = time.monotonic()
    try:
        verdict = sandbox.run(watch.program(hostile), limits=hostile.limits)
    except Exception as e:  # noqa: BLE001 - a sandbox error is a failed containment, reported
        return Outcome(hostile.name, [f"sandbox raised {type(e).__name__}: {e}"], None,
                       time.monotonic() - started)
    elapsed = time.monotonic() - started
    problems = [p for p in [hostile.check(verdict)] if p]
    if watch.secret in verdict.stdout + verdict.stderr:
        problems.append("read the parent's environment")
    if elapsed > hostile.limits.timeout_s + 5.0:  # slack: a loaded machine
        problems.append(f"took {elapsed:.1f} s, limit {hostile.limits.timeout_s} s")
    problems += watch.problems(sandbox.backend.uid)
    after = sandbox.run("print(6 * 7)")
    if after.stdout != "42\n":
        problems.append(f"the next run failed: {after.stderr[-200:]!r}")
    return Outcome(hostile.name, problems, verdict, elapsed)


def run_battery(sandbox, only: list[str] | None = None,
                report: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Every program (or those named in `only`) through `sandbox`, one after another."""
    chosen = [h for h in BATTERY if only is None or h.name in only]
    outcomes = []
    with HostWatch().active() as watch:
        for hostile in chosen:
            outcome = run_one(sandbox, hostile, watch)
            outcomes.append(outcome)
            if report:
                report(outcome)
    return outcomes
