"""Puzzle MIP speed: 80 layers x 54 variants (the LN-Super / Llama-70B search-space size),
HiGHS via highspy, with memory + runtime constraints, the first solution and two diverse
ones; plus the brute-force agreement check on small instances.

    .venv/bin/python benchmarks/bench_nas.py   # writes benchmarks/results/nas_mip.json

Wall and CPU seconds are both recorded: the machine is shared, and the wall clock there
mostly measures the queue for the two cores.
"""
from __future__ import annotations

import itertools
import json
import random
import statistics
import sys
import time

from common import ROOT, machine_facts

sys.path.insert(0, str(ROOT / "tests" / "nas"))

from nas.mip import solve  # noqa: E402
from test_mip import brute_force, puzzle_sized_problem, random_problem  # noqa: E402


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    first, div = [], []
    for seed in range(5):
        p = puzzle_sized_problem(80, 54, seed)
        sols, wall, cpu = timed(lambda: solve(p))
        first.append({"seed": seed, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                      "objective": sols[0].objective})
        sols, wall, cpu = timed(lambda: solve(p, num_solutions=3, diversity=0.8))
        div.append({"seed": seed, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                    "solutions": len(sols), "objectives": [s.objective for s in sols]})
    agree = 0
    for seed in range(30):
        p = random_problem(random.Random(seed), 4, 5, [("latency_ms", 1.6), ("memory_mib", 2.2)])
        bf = brute_force(p)
        try:
            got = solve(p)[0].objective
        except ValueError:
            got = None
        agree += (bf is None and got is None) or (bf is not None and got is not None and abs(bf - got) < 1e-9)
    result = {
        "command": ".venv/bin/python benchmarks/bench_nas.py",
        "problem": "80 layers x 54 variants, runtime + memory upper bounds, minimise summed block score",
        "first_solution": first, "three_diverse_solutions": div,
        "median_first_cpu_s": statistics.median(r["cpu_s"] for r in first),
        "median_first_wall_s": statistics.median(r["wall_s"] for r in first),
        "brute_force_agreement": f"{agree}/30 (4 layers x 5 variants, 2 constraints)",
        "machine": machine_facts(),
    }
    out = ROOT / "benchmarks" / "results" / "nas_mip.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("median_first_cpu_s", "median_first_wall_s", "brute_force_agreement")}))
    print(out)


if __name__ == "__main__":
    main()
