"""`reforge nas ...` (registered through the `reforge.cli` entry-point group).

    reforge nas                      the Puzzle pipeline on the tiny default (= `reforge nas run`)
    reforge nas run [key=value ...]  the same, with config overrides (recipes/configs/puzzle_tiny.yaml)
    reforge nas minitron-ssm [key=value ...]
                                     Minitron-SSM + MiniPuzzle on the tiny NemotronH
                                     (recipes/configs/minitron_ssm_tiny.yaml)
    reforge nas search --library FILE --objective metrics.kl_div --max stats.memory_mib=X ...
                                     solve a block library (public Puzzle layout) and print the
                                     per-layer choice and the totals
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parent.parent / "recipes" / "configs"
PUZZLE_TINY, MINITRON_SSM_TINY = CONFIGS / "puzzle_tiny.yaml", CONFIGS / "minitron_ssm_tiny.yaml"


def _bound(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith(("stats.", "metrics.")):
        raise argparse.ArgumentTypeError(f"{text!r}: expected stats.NAME=VALUE or metrics.NAME=VALUE")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a number") from None


def search_library(args: argparse.Namespace) -> dict:
    """Load, build the MIP, solve; returns the printable result (raises the solver's errors)."""
    from nas.library import BlockLibrary, library_problem
    from nas.mip import solve
    
    lib = BlockLibrary.load(args.library)
    maxima, minima = dict(args.max or []), dict(args.min or [])
    problem, keys = library_problem(lib, args.objective, maxima, minima, args.time_limit, args.maximize)
    t0 = time.perf_counter()
    sols = solve(problem, args.num_solutions, args.diversity)
    seconds = time.perf_counter() - t0
    reported = sorted({args.objective, *maxima, *minima, *(f"stats.{s}" for s in ("num_params", "memory_mib",
                                                                                   "runtime_ms"))})
    out = {"library": str(args.library), "layers": len(lib.layers), "objective": args.objective,
           "maximize": args.maximize, "max": maxima, "min": minima, "seconds": round(seconds, 4), "solutions": []}
    for s in sols:
        chosen = [lib.layers[i][keys[i][j]] for i, j in enumerate(s.choice)]
        totals = {}
        for name in reported:
            try:
                totals[name] = sum(e.value(name) for e in chosen)
            except KeyError:
                continue  # a stat this library does not have
        out["solutions"].append({"choice": [keys[i][j] for i, j in enumerate(s.choice)], "totals": totals,
                                 "optimal": s.optimal, "gap": s.gap})
    return out


def _print_result(res: dict) -> None:
    for n, sol in enumerate(res["solutions"]):
        status = "optimal" if sol["optimal"] else f"time limit reached; best found, gap {sol['gap']:.3g}"
        print(f"solution {n + 1} ({status}), {res['layers']} layers, solved in {res['seconds']:.3f} s")
        for i, key in enumerate(sol["choice"]):
            print(f"  layer_{i:<4} {key.replace(chr(9) + '&&' + chr(9), '  &&  ')}")
        for name, value in sol["totals"].items():
            bound = ""
            if name in res["max"]:
                bound += f" (max {res['max'][name]:g})"
            if name in res["min"]:
                bound += f" (min {res['min'][name]:g})"
            print(f"  total {name} = {value:.6g}{bound}")


def _cmd_search(args: argparse.Namespace) -> int:
    from nas.library import LibraryError
    from nas.mip import InfeasibleBudget, SolverTimeLimit

    try:
        res = search_library(args)
    except (LibraryError, KeyError, FileNotFoundError) as e:
        print(f"reforge nas search: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    except InfeasibleBudget as e:
        print(f"reforge nas search: {e}", file=sys.stderr)
        return 3
    except SolverTimeLimit as e:
        print(f"reforge nas search: {e}", file=sys.stderr)
        return 4
    print(json.dumps(res, indent=2)) if args.json else _print_result(res)
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    return list(getattr(args, "overrides", [])) + (["--show-config"] if getattr(args, "show_config", False) else [])


def _cmd_run(args: argparse.Namespace) -> int:
    from core.config import parse_cli
    from nas.config import PuzzleConfig
    from nas.pipeline import run

    run(parse_cli(PuzzleConfig, _overrides(args), PUZZLE_TINY, prog="reforge nas run"))
    return 0


def _cmd_minitron_ssm(args: argparse.Namespace) -> int:
    from core.config import parse_cli
    from nas.config import MinitronSSMConfig
    from nas.minitron_ssm import run

    run(parse_cli(MinitronSSMConfig, _overrides(args), MINITRON_SSM_TINY, prog="reforge nas minitron-ssm"))
    return 0


def register_nas(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("nas", help="Puzzle NAS: run the tiny pipeline, or search a block library")
    parser.set_defaults(func=_cmd_run)
    sub = parser.add_subparsers(dest="nas_command")
    run = sub.add_parser("run", help="the Puzzle pipeline (recipes/configs/puzzle_tiny.yaml + key=value overrides)")
    run.add_argument("overrides", nargs="*", help="config=FILE.yaml and key=value overrides")
    run.add_argument("--show-config", action="store_true", help="print every resolved setting and exit")
    run.set_defaults(func=_cmd_run)
    ssm = sub.add_parser("minitron-ssm", help="Minitron-SSM + MiniPuzzle on a NemotronH hybrid "
                                              "(recipes/configs/minitron_ssm_tiny.yaml + key=value overrides)")
    ssm.add_argument("overrides", nargs="*", help="config=FILE.yaml and key=value overrides")
    ssm.add_argument("--show-config", action="store_true", help="print every resolved setting and exit")
    ssm.set_defaults(func=_cmd_minitron_ssm)
    s = sub.add_parser("search", help="solve a block library (public Puzzle layout) under budgets")
    s.add_argument("--library", required=True, type=Path, help="block library JSON ({'layer_0': {KEY: {...}}})")
    s.add_argument("--objective", default="metrics.kl_div", help="summed per-layer field to minimise")
    s.add_argument("--maximize", action="store_true", help="maximise the objective instead")
    s.add_argument("--max", action="append", type=_bound, metavar="FIELD=VALUE",
                   help="upper bound on a field summed over layers (repeatable)")
    s.add_argument("--min", action="append", type=_bound, metavar="FIELD=VALUE",
                   help="lower bound on a field summed over layers (repeatable)")
    s.add_argument("--num-solutions", type=int, default=1)
    s.add_argument("--diversity", type=float, default=0.8, help="max share of layers repeated between solutions")
    s.add_argument("--time-limit", type=float, default=60.0, help="solver seconds per solution")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_cmd_search)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reforge")
    register_nas(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["nas", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
