"""Every knob is documented where it is declared, and `--show-config` prints it.

The lint walks every recipe's config schema (read from the recipes' `parse_cli(Schema, ...)`)
through its nested sections (dataclass fields, also inside lists, dicts and optionals) and
requires a non-empty `metadata["help"]` on every field. The CLI test runs each recipe with
`--show-config`: it exits 0 and prints every resolved setting with its value and help.
"""
from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from core.config import describe, load_config, settings
from rl.config import GRPOConfig

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(p for p in (ROOT / "recipes").glob("*.py") if "parse_cli(" in p.read_text()
                 or re.search(r"from ([\w.]+) import main", p.read_text()))


def _schema(recipe: Path) -> type | None:
    """The schema a recipe hands to parse_cli (following a recipe that delegates to a package's `main`)."""
    src = recipe.read_text()
    if "parse_cli(" not in src:
        src = Path(importlib.import_module(re.search(r"from ([\w.]+) import main", src).group(1)).__file__).read_text()
    found = re.search(r"parse_cli\((\w+)", src)
    if not found:
        return None
    module = re.search(rf"from ([\w.]+) import [^\n]*\b{found.group(1)}\b", src).group(1)
    return getattr(importlib.import_module(module), found.group(1))


def _config_classes(schema: type, seen: dict[type, None] | None = None) -> dict[type, None]:
    seen = {} if seen is None else seen
    if schema in seen:
        return seen
    seen[schema] = None
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        stack = [hints[f.name]]
        while stack:
            t = stack.pop()
            if dataclasses.is_dataclass(t):
                _config_classes(t, seen)
            stack += list(typing.get_args(t))
    return seen


SCHEMAS = {p.stem: s for p in RECIPES if (s := _schema(p)) is not None}


def test_every_recipe_has_a_schema():
    assert set(SCHEMAS) >= {"ultra_grpo", "super_rpo", "nano_sft", "puzzle_nas", "minitron_ssm", "evaluate"}


@pytest.mark.parametrize("recipe", sorted(SCHEMAS))
def test_every_config_field_has_help(recipe):
    missing = [f"{cls.__module__}.{cls.__qualname__}.{f.name}"
               for cls in _config_classes(SCHEMAS[recipe]) for f in dataclasses.fields(cls)
               if not str(f.metadata.get("help", "")).strip()]
    assert not missing, f"fields without metadata['help'] (document them where declared): {missing}"


def test_the_algorithm_section_is_the_loss_config():
    from rl.losses import ClippedPolicyLoss, PolicyLossConfig

    cfg = load_config(GRPOConfig, ROOT / "recipes/configs/ultra_grpo_tiny.yaml", ["algorithm.clip_high=0.3"])
    assert isinstance(cfg.algorithm, PolicyLossConfig)
    loss = ClippedPolicyLoss.for_batch(cfg.algorithm, [[1, 1, 0], [1]])
    assert loss.cfg is cfg.algorithm and loss.cfg.clip_high == 0.3 and loss.token_normalizer == 3.0


def test_describe_lists_sections_and_settings_with_help():
    cfg = load_config(GRPOConfig, ROOT / "recipes/configs/ultra_grpo_tiny.yaml", ["algorithm.kl_coef=0.3"])
    keys = [k for k, _, _ in settings(cfg)]
    assert "algorithm" in keys and "algorithm.kl_coef" in keys and "generator.engine" in keys
    text = describe(cfg)
    help_ = next(f.metadata["help"] for f in dataclasses.fields(cfg.algorithm) if f.name == "kl_coef")
    assert re.search(rf"^algorithm\.kl_coef: 0\.3 +# {re.escape(help_)}$", text, re.M)
    assert "\n# algorithm: " in text


@pytest.mark.parametrize("recipe", sorted(SCHEMAS))
def test_show_config_prints_every_setting_with_its_help(recipe):
    args = [sys.executable, str(ROOT / "recipes" / f"{recipe}.py"), "--show-config"]
    if recipe == "ultra_grpo":
        args += ["config=recipes/configs/ultra_grpo_tiny.yaml", "rollout.max_tokens=77"]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    body = lines[lines.index(next(x for x in lines if x.startswith("Settings"))) + 1:]
    leaves = [x for x in body if not x.startswith("# ")]
    assert leaves and all(re.match(r"^[\w.]+: .*  # \S", x) for x in leaves), [x for x in leaves if "  # " not in x]
    if recipe == "ultra_grpo":
        assert any(x.startswith("rollout.max_tokens: 77 ") and "completion tokens per sample" in x for x in leaves)
