"""Typed configs: dataclass schemas filled from YAML and `key=value` overrides via OmegaConf.

Errors are caught before any heavy work and reported as `ConfigError` naming the key (unknown
key, wrong type, missing required value, a value the schema rejects) and where its value came
from: the command-line override that set it, else the YAML file. Recipes call `parse_cli`, which
also answers `--help` / `--show-config` by printing every resolved setting with its help text
(each dataclass field documents itself in `field(metadata={"help": ...})`).
"""
from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")

__all__ = ["MISSING", "ConfigError", "check_choice", "describe", "load_config", "parse_cli", "save_config", "settings",
           "to_yaml"]


def check_choice(key: str, value: Any, choices: Sequence[Any]) -> None:
    """For schemas' __post_init__: reject a value outside `choices`, naming the key."""
    if value not in choices:
        raise ValueError(f"key '{key}': {value!r} is not one of {list(choices)}")


class ConfigError(ValueError):
    """A config cannot be used; the message names the source and the key."""


class _Yaml12BoolLoader(yaml.SafeLoader):
    """YAML with 1.2 booleans: `on`/`off`/`yes`/`no` stay strings.

    Why: the reasoning modes are literally `on` and `off`; YAML 1.1 (PyYAML's default, and
    OmegaConf's) would silently turn `modes: [on, off]` into `[True, False]`.
    """


_Yaml12BoolLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12BoolLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _yaml_value(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12BoolLoader) if text.strip() else ""


def _dotlist_tree(overrides: Sequence[str]) -> dict:
    tree: dict = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"command line: '{item}' is not key=value")
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _yaml_value(value)
    return tree


def _overlay(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _overlay(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _placeholders(tree: Any, prefix: str = "") -> list[str]:
    """Keys a file leaves as `???` (required, to be given on the command line)."""
    if isinstance(tree, dict):
        return [k for key, v in tree.items() for k in _placeholders(v, f"{prefix}{key}.")]
    return [prefix[:-1]] if tree == "???" else []


_KEY_IN_MESSAGE = re.compile(r"key '([^']+)'")


class _Sources:
    """Where each key's value came from, so an error points at the override the user typed
    rather than at a file that never held the bad value."""

    def __init__(self, file_source: str):
        self.file_source = file_source
        self.overrides: dict[str, str] = {}  # dotted key -> the override as typed

    def add_overrides(self, items: Sequence[str]) -> None:
        self.overrides.update({item.partition("=")[0]: item for item in items})

    def of(self, key: str | None) -> str:
        if key:
            key = re.sub(r"\[\d+\]", "", str(key))  # modes[0] -> modes
            hits = ([k for k in self.overrides if k == key]
                    or [k for k in self.overrides if key.startswith(k + ".") or k.startswith(key + ".")])
            if hits:
                return f"command-line override '{self.overrides[hits[0]]}'"
        return self.file_source


def _describe(err: OmegaConfBaseException, sources: _Sources, fallback: str) -> ConfigError:
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    msg = str(err).split("\n")[0]
    where = f"key '{key}'" if key else "config"
    source = sources.of(key) if key else fallback
    return ConfigError(f"{source}: {where}: {msg}")


def load_config(schema: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build a `schema` instance: defaults <- YAML file <- `key=value` overrides."""
    base = OmegaConf.structured(schema)
    sources = _Sources(str(path) if path is not None else "defaults")
    stage = sources.file_source  # what an error without a key is blamed on
    raw: dict = {}
    try:
        if path is not None:
            if not Path(path).exists():
                raise ConfigError(f"{path}: no such config file")
            loaded = _yaml_value(Path(path).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ConfigError(f"{path}: expected a mapping of settings at the top level")
            base = OmegaConf.merge(base, OmegaConf.create(loaded))
            raw = loaded
        if overrides:
            stage = "command line"
            tree = _dotlist_tree(overrides)
            sources.add_overrides(overrides)
            base = OmegaConf.merge(base, OmegaConf.create(tree))
            raw = _overlay(raw, tree)
        # OmegaConf keeps a default when merging `???` over it, so required-in-file keys are checked here.
        missing = sorted(set(OmegaConf.missing_keys(base)) | set(_placeholders(raw)))
        if missing:
            raise ConfigError(f"{sources.of(missing[0])}: key '{missing[0]}': required value is missing"
                              + (f" (also missing: {missing[1:]})" if len(missing) > 1 else ""))
        try:
            return OmegaConf.to_object(base)
        except ValueError as e:  # a schema's __post_init__ rejected a value; it names the key
            named = _KEY_IN_MESSAGE.search(str(e))
            raise ConfigError(f"{sources.of(named.group(1) if named else None)}: {e}") from None
    except OmegaConfBaseException as e:
        raise _describe(e, sources, stage) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{stage}: invalid YAML: {e}") from None


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(to_yaml(cfg))


def settings(cfg: Any, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, value, help) for every setting of a config instance, in declaration order.
    A nested config is listed as a section (its key, the config itself, its help) followed by
    its own settings. The help is the field's `metadata["help"]`, where each knob is
    documented (empty when it has none)."""
    out: list[tuple[str, Any, str]] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out.append((f"{prefix}{f.name}", value, f.metadata.get("help", "")))
        if dataclasses.is_dataclass(value):
            out += settings(value, f"{prefix}{f.name}.")
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _show(value: Any) -> str:
    text = yaml.safe_dump(_plain(value), default_flow_style=True, width=10**6, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def describe(cfg: Any) -> str:
    """The resolved config, one line per setting: `key: value  # help`; a section is a
    `# key: help` line before its settings (`--show-config`)."""
    rows = [(key, None if dataclasses.is_dataclass(value) else _show(value), text)
            for key, value, text in settings(cfg)]
    width = max(len(k) + len(v) + 2 for k, v, _ in rows if v is not None)
    lines = []
    for key, value, text in rows:
        if value is None:
            lines.append(f"# {key}: {text}" if text else f"# {key}")
        else:
            lines.append(f"{f'{key}: {value}':<{width}}  # {text}" if text else f"{key}: {value}")
    return "\n".join(lines)


def _help_text(schema: type, prog: str, default_path: str | None) -> str:
    lines = [f"usage: {prog} [config=FILE.yaml] [key=value ...] [--show-config]", ""]
    doc = (schema.__doc__ or "").strip()
    if doc:
        lines += [doc, ""]
    if default_path:
        lines.append(f"Default config file: {default_path}")
    lines.append("Settings (dotted keys as resolved from the config file and overrides, each with its help):")
    return "\n".join(lines)


def parse_cli(schema: type[T], argv: Sequence[str] | None = None, default_path: str | Path | None = None,
              prog: str | None = None) -> T:
    """Recipe entry: `config=FILE` picks the YAML (else default_path), the rest are overrides.

    Exits with status 2 and a one-line message on a config error; `--help` and
    `--show-config` print every resolved setting with its value and help, and exit 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or Path(sys.argv[0]).name
    path = default_path
    overrides = []
    show = False
    for a in argv:
        if a in ("-h", "--help", "--show-config"):
            show = True
        elif a.startswith("config="):
            path = a.split("=", 1)[1]
        else:
            overrides.append(a)
    try:
        cfg = load_config(schema, path, overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)
    if show:
        print(_help_text(schema, prog, str(default_path) if default_path else None))
        print(describe(cfg))
        sys.exit(0)
    return cfg


def field_names(schema: type) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]
