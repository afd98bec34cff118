"""Evaluate a model: python recipes/evaluate.py model=DIR tasks=[math,code] modes=[on,off] n=8

Compare two finished runs: python recipes/evaluate.py compare=[RUN_A,RUN_B]
The last printed line is the run directory. Settings: --show-config; results: evaluation/README.md.
"""
import sys

from evaluation.cli import main

if __name__ == "__main__":  # vLLM in-process needs the guard
    sys.exit(main(sys.argv[1:]))
