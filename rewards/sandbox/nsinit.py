"""Stage two of the `unshare` backend: builds the sandbox's root file system, then execs.

util-linux `unshare --user --map-current-user --keep-caps --mount --pid --net --ipc --uts
--cgroup --fork` starts this script as PID 1 of the new namespaces, under the caller's own
unprivileged uid but holding every capability *inside* the new user namespace. Like
bubblewrap it then: makes all mounts private; mounts a tmpfs as the new root; binds /usr
(and the /bin, /lib... entries) read-only; gives a minimal /dev, a fresh /proc, a size-capped
/tmp and working directory; copies the program files in from inherited descriptors; makes the
root read-only; pivots into it and detaches the host's tree; drops every capability (bounding,
ambient, permitted) and sets no_new_privs. It stays PID 1 as a minimal init, as bubblewrap's
does: it forks the program (so the program is not an init, which the kernel would shield from
SIGXCPU and other default-action signals), reaps orphans, and exits with the program's status
(128 + N for a program killed by signal N), upon which the kernel kills the namespace.

It runs as `python -I -c <this file's source> <json>`, so it imports only the standard
library: the repository need not be readable by the sandbox's uid.
"""
import ctypes
import json
import os
import platform
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
CAP_VERSION_3 = 0x20080522
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}
DEVICES = ("null", "zero", "full", "random", "urandom")
NEWROOT = "/tmp"  # mount point of the new root inside the private mount namespace
# statvfs f_flag bits that a remount in a user namespace must keep (they are locked)
KEPT_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048 | 4096

libc = ctypes.CDLL(None, use_errno=True)


def check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sandbox init: {what}: {os.strerror(err)}")


def mount(src, target, fstype, flags, data=None):
    check(libc.mount(src and src.encode(), target.encode(), fstype and fstype.encode(),
                     ctypes.c_ulong(flags), data and data.encode()),
          f"mount {src or fstype} on {target}")


def bind_readonly(src, target):
    mount(src, target, None, MS_BIND | MS_REC)
    kept = os.statvfs(target).f_flag & KEPT_FLAGS
    mount(None, target, None, MS_REMOUNT | MS_BIND | kept | MS_RDONLY | MS_NOSUID | MS_NODEV)


def build_root(cfg):
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    size = int(cfg["tmpfs_bytes"])
    mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    root = NEWROOT
    for src in cfg["ro_binds"]:
        os.makedirs(root + src, exist_ok=True)
        bind_readonly(src, root + src)
    for link, target in cfg["symlinks"].items():
        os.symlink(target, root + link)
    os.mkdir(root + "/dev")
    mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, f"mode=0755,size={size}")
    for name in DEVICES:
        open(f"{root}/dev/{name}", "w").close()
        mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)
    os.mkdir(root + "/dev/shm")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    os.mkdir(root + "/proc")
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path, mode in (("/tmp", "1777"), (cfg["workdir"], "0755")):
        os.makedirs(root + path, exist_ok=True)
        mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={size}")
    for name, fd in cfg["files"].items():
        with open(f"{root}{cfg['workdir']}/{name}", "wb") as out:
            while chunk := os.read(fd, 1 << 20):
                out.write(chunk)
        os.close(fd)
    mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(root)
    check(libc.syscall(SYS_PIVOT_ROOT[platform.machine()], b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "detach the host's root")
    os.chdir(cfg["workdir"])


def drop_privileges():
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    header = (ctypes.c_uint32 * 2)(CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable x 2 words: all empty
    check(libc.capset(header, data), "capset")


def main():
    cfg = json.loads(sys.argv[1])
    hostname = b"sandbox"
    check(libc.sethostname(hostname, len(hostname)), "sethostname")
    build_root(cfg)
    drop_privileges()
    os.closerange(3, 1 << 16)
    child = os.fork()
    if child == 0:
        os.execve(cfg["argv"][0], cfg["argv"], {"PATH": "/usr/bin:/bin"})
    while True:
        pid, status = os.wait()
        if pid == child:
            break
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


main()
