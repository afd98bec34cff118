"""A recipe's resolved config, asked of the recipe itself (`RECIPE ARGS --show-config`).

Both launchers check the config on the submitting machine, so an unknown key or a wrong
type is reported before a Slurm allocation or a Kubernetes cluster is spent on it, and the
Kubernetes renderer sizes worker groups from the resolved values.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_HEADER = "Settings (dotted keys"  # core.config._help_text's last line before the YAML


class RecipeConfigError(ValueError):
    """The recipe rejected its config; the message is the recipe's own (it names the key)."""


def resolve_recipe_config(recipe: str, args: list[str], python: str = sys.executable) -> dict[str, Any]:
    if not (ROOT / recipe).is_file():
        raise RecipeConfigError(f"recipe {recipe!r} not found under {ROOT}")
    out = subprocess.run([python, recipe, *args, "--show-config"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        raise RecipeConfigError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else
                                f"{recipe} --show-config exited with {out.returncode}")
    lines = out.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(SETTINGS_HEADER)), None)
    if start is None:
        raise RecipeConfigError(f"{recipe} --show-config printed no settings")
    return _nest(yaml.safe_load("\n".join(lines[start + 1:])) or {})


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """`--show-config` prints one dotted key per line (`generator.num_engines: 4  # help`):
    the tree the launchers read from it."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def gpus_needed(cfg: dict[str, Any]) -> int:
    """GPUs a GRPO-style config asks for: generator engines plus policy ranks (0 elsewhere)."""
    gen, place = cfg.get("generator") or {}, cfg.get("placement") or {}
    return int(gen.get("num_engines", 0) * gen.get("num_gpus_per_engine", 0)
               + place.get("policy_world_size", 0) * place.get("policy_num_gpus", 0))
