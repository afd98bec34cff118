"""Minitron-SSM on a hybrid Mamba/attention model: python recipes/minitron_ssm.py [config=FILE.yaml] [key=value ...]

With no arguments: the whole hybrid pipeline on the tiny NemotronH default (trained here,
nothing downloaded): importance, group-aware width + depth pruning under a 0.55x parameter
budget, candidates ranked before distillation, logit KD, a random-pruned baseline,
MiniPuzzle layer search, and the served comparison in vLLM. Settings: --show-config.
summary.json: parent_params, child_params, parent_accuracy, child_accuracy,
accuracy_retention, random_prune_accuracy, parent_tokens_per_s, child_tokens_per_s,
speedup, child_dir (and more). The last printed line is the run directory.
"""
import sys
from pathlib import Path

from core.config import parse_cli
from nas.config import MinitronSSMConfig
from nas.minitron_ssm import run

DEFAULT = Path(__file__).parent / "configs" / "minitron_ssm_tiny.yaml"

if __name__ == "__main__":  # vLLM (measurement subprocesses) needs the guard
    run(parse_cli(MinitronSSMConfig, sys.argv[1:], DEFAULT, prog="minitron_ssm.py"))
