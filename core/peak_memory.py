"""Peak memory of this process over a window (Linux), to bound what a weight sync costs.

Two figures: the kernel's high-water mark of resident memory (VmHWM, reset through
/proc/self/clear_refs), which also counts pages of Ray's shared-memory object store that
this process touched; and the peak of private (anonymous) memory, sampled every few
milliseconds by a thread, which is what this process itself allocated (after the C
allocator returned its free memory to the OS, so reused free memory is counted too).
"""
from __future__ import annotations

import ctypes
import re
import threading
from dataclasses import dataclass


def _status_mib() -> dict[str, float]:
    with open("/proc/self/status") as f:
        return {k: int(v) / 1024 for k, v in re.findall(r"^(VmRSS|VmHWM|RssAnon|RssShmem):\s+(\d+) kB", f.read(), re.M)}


@dataclass
class Peak:
    rss_mib: float  # resident-memory high-water mark, object-store pages included
    private_mib: float  # highest sampled private (anonymous) memory


class PeakWindow:
    """`start()` opens a window, `stop()` closes it and returns the peaks minus the start."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # Hand freed heap back to the OS first: memory kept by the allocator from earlier work
        # would otherwise be reused unseen and the window would under-count.
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the high-water mark drops to the current RSS
        now = _status_mib()
        self.base, self.max_private = now, now["RssAnon"]
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.max_private = max(self.max_private, _status_mib()["RssAnon"])

    def stop(self) -> Peak:
        self._stop.set()
        self._thread.join()
        end = _status_mib()
        private = max(self.max_private, end["RssAnon"])
        return Peak(end["VmHWM"] - self.base["VmRSS"], private - self.base["RssAnon"])
