"""The `reforge` command. Sub-commands are discovered through the `reforge.cli` entry-point
group, so each stage registers its own commands and `core` never imports the stages."""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reforge", description="Post-training toolkit for reasoning LLMs.")
    sub = parser.add_subparsers(dest="command", required=True)
    for ep in sorted(entry_points(group="reforge.cli"), key=lambda e: e.name):
        try:
            register = ep.load()
        except ImportError as e:  # one broken extension must not take the others down
            print(f"reforge: sub-command '{ep.name}' ({ep.value}) unavailable: {e}", file=sys.stderr)
            continue
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
