"""`reforge nas search` on public-layout block libraries: 80 layers x 54 variants with
integer runtime/memory stats, checked against an independent exact solver (dynamic
programming over the two integer budgets), timed as the user runs it (the CLI in a fresh
process: import + load + solve + print) and as the solve alone.

    .venv/bin/python benchmarks/bench_nas_search.py   # writes benchmarks/results/nas_search.json
"""
from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine_facts

sys.path.insert(0, str(ROOT / "tests" / "nas"))

from nas.library import BlockLibrary, library_problem  # noqa: E402
from nas.mip import solve  # noqa: E402
from test_library_search import dp_optimum, random_library  # noqa: E402

BUDGET = {"stats.runtime_ms": 200, "stats.memory_mib": 220}


def main() -> None:
    rows = []
    for seed in range(5):
        raw = random_library(random.Random(100 + seed), 80, 54, integer=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "lib.json"
            path.write_text(json.dumps(raw))
            problem, _ = library_problem(BlockLibrary.load(path), "metrics.kl_div", BUDGET, {})
            problem.mip_rel_gap = 0.0
            c0 = time.process_time()
            sol = solve(problem)[0]
            solve_cpu = time.process_time() - c0
            cmd = [sys.executable, "-m", "nas.cli", "search", "--library", str(path), "--json"] + \
                  [a for k, v in BUDGET.items() for a in ("--max", f"{k}={v}")]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            w0 = time.perf_counter()
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
            cli_wall = time.perf_counter() - w0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cli = json.loads(out.stdout)["solutions"][0]
        dp = dp_optimum(raw, BUDGET["stats.runtime_ms"], BUDGET["stats.memory_mib"])
        rows.append({"seed": seed, "mip_objective": sol.objective, "dp_objective": dp,
                     "cli_objective": cli["totals"]["metrics.kl_div"], "optimal": sol.optimal,
                     "agree": abs(sol.objective - dp) < 1e-6 and abs(cli["totals"]["metrics.kl_div"] - dp) < 1e-6,
                     "solve_cpu_s": round(solve_cpu, 3), "cli_wall_s": round(cli_wall, 3),
                     "cli_cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3)})
        print(rows[-1], flush=True)
    result = {"command": "python benchmarks/bench_nas_search.py", "layers": 80, "variants": 54, "budget": BUDGET,
              "runs": rows, "all_agree": all(r["agree"] for r in rows),
              "max_solve_cpu_s": max(r["solve_cpu_s"] for r in rows),
              "max_cli_wall_s": max(r["cli_wall_s"] for r in rows), "machine": machine_facts()}
    out = ROOT / "benchmarks" / "results" / "nas_search.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "machine")}))


if __name__ == "__main__":
    main()
