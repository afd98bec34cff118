"""Reward-side throughput on this machine: isolated sandbox executions per second (a trivial
program and a 10-test function), the overhead of isolation over a plain subprocess, and
math-verify verdicts per second through the worker processes.

    .venv/bin/python benchmarks/bench_rewards.py [--quick]

Writes benchmarks/results/rewards.json.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewards import RewardSample  # noqa: E402
from rewards.builtin.code import code_reward  # noqa: E402
from rewards.builtin.math import MathVerifier  # noqa: E402
from rewards.sandbox import Limits, Sandbox  # noqa: E402
from rewards.sandbox.backends import bwrap_version, system_python  # noqa: E402

TEN_TESTS = {"type": "code", "entry_point": "fib",
             "tests": [f"assert fib({n}) == {v}" for n, v in
                       [(0, 0), (1, 1), (2, 1), (3, 2), (5, 5), (8, 21), (10, 55), (12, 144),
                        (15, 610), (20, 6765)]]}
FIB = ("<think>iterate</think>```python\ndef fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n"
       "        a, b = b, a + b\n    return a\n```")


def rate(fn, n: int, workers: int) -> dict[str, float]:
    """Run fn() n times on `workers` threads: per-second rate and median latency in ms."""
    latencies: list[float] = []

    def timed(_: int) -> None:
        t = time.perf_counter()
        fn()
        latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(workers) as pool:
        list(pool.map(timed, range(n)))
    wall = time.perf_counter() - start
    return {"per_s": round(n / wall, 1), "median_ms": round(statistics.median(latencies) * 1000, 1),
            "n": n, "workers": workers}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    n = 20 if args.quick else 60
    py = system_python()
    box = Sandbox(Limits(timeout_s=10))

    def trivial() -> None:
        assert box.run("print(1)").stdout == "1\n"

    def plain() -> None:
        out = subprocess.run([py, "-E", "-s", "-B", "-c", "print(1)"], capture_output=True, env={})
        assert out.stdout == b"1\n"

    sample = RewardSample("fib", [{"role": "user", "content": "fib"}], FIB, TEN_TESTS, "on")

    def ten_tests() -> None:
        assert code_reward(sample).score == 1.0

    trivial()  # warm: backend probe
    results: dict[str, object] = {
        "plain_subprocess": rate(plain, n, 1),
        "sandbox_trivial": rate(trivial, n, 1),
        "sandbox_trivial_2_threads": rate(trivial, n, 2),
        "sandbox_10_test_function": rate(ten_tests, n, 1),
        "sandbox_10_test_function_2_threads": rate(ten_tests, n, 2),
    }
    results["isolation_overhead_ms"] = round(results["sandbox_trivial"]["median_ms"]
                                             - results["plain_subprocess"]["median_ms"], 1)

    answers = [(f"\\frac{{{i}}}{{{i + 1}}}", f"{i}/{i + 1}") for i in range(1, 41)]
    answers += [(f"{i}.5", f"\\frac{{{2 * i + 1}}}{{2}}") for i in range(40)]
    for workers in (1, 2):
        verifier = MathVerifier(workers=workers)
        verifier.verify("1", "1", 30)  # start the workers outside the timing
        for _ in range(workers - 1):
            verifier._idle.put(verifier._spawn())
        todo = answers * (1 if args.quick else 3)
        idx = iter(range(len(todo)))

        def one() -> None:
            pred, gold = todo[next(idx)]
            assert verifier.verify(pred, gold, 10)["correct"]
        results[f"math_verdicts_{workers}_workers"] = rate(one, len(todo), workers)
        verifier.close()

    out = {
        "name": "rewards",
        "command": "python benchmarks/bench_rewards.py" + (" --quick" if args.quick else ""),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version(), "sandbox_backend": box.backend.name,
                    "sandbox_user": box.backend.uid, "bwrap": bwrap_version(),
                    "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "results": results,
    }
    path = ROOT / "benchmarks" / "results" / "rewards.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
