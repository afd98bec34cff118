"""The hostile battery's size and result on each sandbox backend available on this machine:
programs contained, the failing ones, and the seconds the battery took.

    .venv/bin/python benchmarks/bench_sandbox_battery.py

Runs bwrap and unshare (whichever contain their probe here) and, for contrast, the opt-in
`none` backend (rlimits and a cgroup only, programs as an unprivileged uid), which must fail
the escape programs. Writes benchmarks/results/sandbox_battery.json.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewards.sandbox import doctor  # noqa: E402
from rewards.sandbox.battery import BATTERY  # noqa: E402


def main() -> None:
    statuses = doctor.backend_statuses()
    results = {}
    for name in [s.name for s in statuses if s.contains] + ["none"]:
        started = time.monotonic()
        outcomes = doctor.battery_on(name)
        results[name] = {
            "programs": len(outcomes), "contained": sum(o.passed for o in outcomes),
            "failed": {o.name: o.problems for o in outcomes if not o.passed},
            "seconds": round(time.monotonic() - started, 1)}
        print(f"{name}: {results[name]['contained']}/{len(outcomes)} contained "
              f"in {results[name]['seconds']} s", flush=True)
    out = {"battery_size": len(BATTERY), "backends": results,
           "refused": {s.name: s.problems for s in statuses if not s.contains},
           "features": doctor.kernel_features(),
           "command": "python benchmarks/bench_sandbox_battery.py",
           "machine": {"cpu": platform.machine(), "cores": os.cpu_count(),
                       "python": platform.python_version(),
                       "load_average": [round(x, 2) for x in os.getloadavg()]}}
    path = ROOT / "benchmarks/results/sandbox_battery.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
