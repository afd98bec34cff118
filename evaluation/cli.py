"""`reforge eval key=value ...` and `reforge eval compare RUN_A RUN_B` (same as recipes/evaluate.py)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "eval_default.yaml"


def main(argv: list[str]) -> int:
    from core.config import parse_cli
    from evaluation.config import EvalConfig
    from evaluation.run import ProtocolMismatch, compare_runs, evaluate

    if argv[:1] == ["compare"]:
        runs = [a for a in argv[1:] if "=" not in a]
        argv = [f"compare={json.dumps(runs)}"] + [a for a in argv[1:] if "=" in a]
    cfg = parse_cli(EvalConfig, argv, DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None, prog="reforge eval")
    try:
        if cfg.compare:
            compare_runs(cfg)
        else:
            evaluate(cfg)
    except (ValueError, FileNotFoundError, ProtocolMismatch) as e:
        print(f"eval error: {e}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace) -> int:
    return main(args.settings + (["--show-config"] if args.show_config else []))


def register_eval(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a model (pass@k, reasoning on/off) or compare two runs",
        description="reforge eval model=DIR tasks=[math,code] modes=[on,off] n=8 | reforge eval compare RUN_A RUN_B "
                    "(--show-config lists every setting)", add_help=False)
    p.add_argument("-h", "--help", "--show-config", dest="show_config", action="store_true",
                   help="print every setting with its resolved value and exit")
    p.add_argument("settings", nargs=argparse.REMAINDER, help="key=value overrides, or: compare RUN_A RUN_B")
    p.set_defaults(func=_run)
