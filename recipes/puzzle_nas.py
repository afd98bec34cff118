"""Puzzle NAS: python recipes/puzzle_nas.py [config=FILE.yaml] [key=value ...]

With no arguments: the whole search on the tiny NAS parent under a vLLM-CPU decode
budget; prints the per-layer choices, parameters, decode tokens/s and held-out accuracy of
parent and child. Settings: --show-config. The last printed line is the run directory.
"""
import sys
from pathlib import Path

from core.config import parse_cli
from nas.config import PuzzleConfig
from nas.pipeline import run

DEFAULT = Path(__file__).parent / "configs" / "puzzle_tiny.yaml"

if __name__ == "__main__":  # vLLM (measurement subprocesses) and Ray need the guard
    run(parse_cli(PuzzleConfig, sys.argv[1:], DEFAULT, prog="puzzle_nas.py"))
