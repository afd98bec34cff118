"""Every shipped config under recipes/configs/ loads into its recipe's schema and passes the
lint a user would want before spending a GPU-hour on it.

Generic over files: a config's schema is the one (of the recipes' `parse_cli` schemas) that
accepts it (the one it is named after when several do), `???` placeholders are filled for
loading, and the rules walk the resolved settings by key name. Names containing `tiny` or
`default` are the CPU defaults; every other shipped config is GPU-scale:
- GPU-scale: every `*num_gpus*` request is > 0 (policy ranks, engines; an engine gets at
  least tensor_parallel_size GPUs), generation and training dtypes are bfloat16, and no
  CPU-only option is set in the file. Sections the file does not mention are ones its
  mode does not run (an offline preference run has no generator) and are left alone.
- All: every reward named exists (rewards registry, `module:function`, entry points),
  the accuracy reward is one of the scored functions, and no two type-specific rewards
  (math, code, if, tool) score the same rows -- each row has one `reward.type`, so every
  sample would fail one of them; `by_type` dispatches on the type instead.
"""
from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from core.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "recipes" / "configs").glob("*.yaml"))
# Keys that only make sense on the CPU machine (vLLM-CPU threads and KV budget, torch
# threads in a policy actor, the HF fallback's batch size, SFT's CPU thread count).
CPU_ONLY_KEYS = ("cpu_threads", "kv_cache_gib", "policy_threads", "hf_batch_size")
CPU_ONLY_VALUES = {"engine": ("hf",), "transport": ("object_store",)}


def _schemas() -> dict[str, type]:
    """recipe name -> its config schema, read from the recipes' `parse_cli(Schema, ...)`
    (following a recipe that delegates to a package's `main`)."""
    out = {}
    for recipe in sorted((ROOT / "recipes").glob("*.py")):
        src = recipe.read_text()
        if "parse_cli(" not in src:
            target = re.search(r"from ([\w.]+) import main", src)
            if not target:
                continue
            src = Path(importlib.import_module(target.group(1)).__file__).read_text()
        name = re.search(r"parse_cli\((\w+)", src).group(1)
        module = re.search(rf"from ([\w.]+) import [^\n]*\b{name}\b", src).group(1)
        out[recipe.stem] = getattr(importlib.import_module(module), name)
    return out


def _placeholders(tree: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _placeholders(v, f"{prefix}{k}.")
    elif tree == "???":
        yield prefix[:-1]


def _load(path: Path) -> tuple[str, Any, dict]:
    raw = yaml.safe_load(path.read_text()) or {}
    fill = [f"{key}=/placeholder/{key.replace('.', '_')}" for key in _placeholders(raw)]
    fits, errors = [], []
    for recipe, schema in _schemas().items():
        try:
            fits.append((recipe, load_config(schema, path, fill)))
        except ConfigError as e:
            errors.append(f"{recipe}: {e}")
    if len(fits) > 1:  # a minimal file may fit several: the recipe it is named after
        fits = [(r, c) for r, c in fits if path.stem.startswith(r)] or fits
    assert len(fits) == 1, f"{path.name} must load into exactly one recipe schema; got {[r for r, _ in fits]}: {errors}"
    return fits[0][0], fits[0][1], raw


def _walk(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            yield f"{prefix}{f.name}", value
            yield from _walk(value, f"{prefix}{f.name}.")


def _raw_keys(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield f"{prefix}{k}", v
            yield from _raw_keys(v, f"{prefix}{k}.")


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _parent(settings: dict[str, Any], key: str) -> dict[str, Any]:
    head = key.rsplit(".", 1)[0] + "." if "." in key else ""
    return {_leaf(k): v for k, v in settings.items() if k.startswith(head) and "." not in k[len(head):]}


def lint(path: Path) -> list[str]:
    from rewards.builtin.by_type import BY_TYPE
    from rewards.registry import get_reward

    recipe, cfg, raw = _load(path)
    settings = dict(_walk(cfg))
    problems = []
    gpu_scale = not any(word in path.stem for word in ("tiny", "default"))
    if gpu_scale:
        for key, value in settings.items():
            if "." in key and key.split(".", 1)[0] not in raw:
                continue  # a section the file leaves alone is one its mode does not run (e.g. offline: generator)
            leaf = _leaf(key)
            if "num_gpus" in leaf and not value > 0:
                problems.append(f"{key}: {value}; a GPU-scale config requests GPUs")
            if leaf == "num_gpus_per_engine" and value < _parent(settings, key).get("tensor_parallel_size", 1):
                problems.append(f"{key}: {value} < tensor_parallel_size")
            if leaf == "dtype" and value != "bfloat16":
                problems.append(f"{key}: {value}; GPU-scale generation and training run in bfloat16")
        for key, value in _raw_keys(raw):
            leaf = _leaf(key)
            if leaf in CPU_ONLY_KEYS or value in CPU_ONLY_VALUES.get(leaf, ()):
                problems.append(f"{key}: {value!r} is a CPU-only option in a GPU-scale config")
    for key, value in settings.items():
        if _leaf(key) != "functions" or not isinstance(value, dict):
            continue
        names = list(value)
        accuracy = _parent(settings, key).get("accuracy_reward")
        for name in names + ([accuracy] if accuracy else []):
            try:
                get_reward(name)
            except LookupError as e:
                problems.append(f"{key}: {e}")
        if accuracy and accuracy not in names:
            problems.append(f"{key}: the accuracy reward {accuracy!r} is not among the scored functions {names}")
        typed = [n for n in names if n in BY_TYPE]
        if len(typed) > 1:
            problems.append(f"{key}: {typed} each score only their own reward.type, so every sample fails one "
                            "of them; use by_type")
    return [f"{path.name} ({recipe}): {p}" for p in problems]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_loads_and_lints_clean(path):
    assert lint(path) == []


def test_the_lint_catches_what_it_is_for(tmp_path):
    bad = tmp_path / "ultra_grpo_bad.yaml"
    bad.write_text("model: ???\nreward:\n  functions: {math: 1.0, code: 1.0, nosuch: 0.1}\n  accuracy_reward: math\n"
                   "generator:\n  dtype: float32\n  kv_cache_gib: 4\n  tensor_parallel_size: 2\n"
                   "placement:\n  policy_world_size: 8\n")
    problems = "\n".join(lint(bad))
    assert "generator.dtype: float32" in problems
    assert "generator.kv_cache_gib: 4 is a CPU-only option" in problems
    assert "generator.num_gpus_per_engine: 0.0; a GPU-scale config requests GPUs" in problems
    assert "placement.policy_num_gpus: 0.0" in problems
    assert "unknown reward 'nosuch'" in problems
    assert "['math', 'code'] each score only their own reward.type" in problems
