"""The block library: per layer, per block variant, its costs (`stats`) and its quality
(`metrics`), in the public Puzzle JSON layout:

    {"layer_0": {"attention = 8 kv heads (parent * 100%)\t&&\tffn = intermediate size 29e3 (parent * 100%)":
                 {"stats": {"memory_mib": ..., "runtime_ms": ...}, "metrics": {"kl_div": ...}}}}

Entries carry only `stats` and `metrics` (reforge writes the same layout; files from
older reforge versions with a `variant` field still load); the variant is read from
the key: sub-blocks joined by `\t&&\t`, each `name = description`. The FFN width in a key
is rounded (`29e3`); the exact width is taken from `stats.ffn_intermediate_size` when the
entry has it.

Stats used by reforge's own search: `num_params`, `memory_mib` (parameters),
`kv_bytes_per_token`, `runtime_ms` (decode step) and `prefill_ms`, with `attention_*` /
`ffn_*` splits as in the public file; metrics: `kl_div`, `lm_loss`. `reforge nas search`
accepts any numeric stat or metric by its dotted name.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from nas.mip import Constraint, MIPProblem
from nas.space import GQA, LINEAR, NO_OP, SWIGLU, AttentionVariant, BlockVariant, FFNVariant

KEY_SEPARATOR = "\t&&\t"
_PARENT_SHARE = re.compile(r"\s*\(parent \* [\d.]+%\)\s*$")
_KV_HEADS = re.compile(r"^(\d+) kv heads$")
_FFN_SIZE = re.compile(r"^intermediate size ([\d.]+(?:e\d+)?)$")
_KINDS = {"no_op": NO_OP, "no op": NO_OP, "linear": LINEAR}


class LibraryError(ValueError):
    """A block library that cannot be read; the message names the file, layer and key."""


def parse_key(key: str) -> dict[str, str]:
    """`attention = 8 kv heads (parent * 100%)\t&&\tffn = ...` -> {"attention": "8 kv heads", "ffn": ...}."""
    parts = {}
    for chunk in key.split(KEY_SEPARATOR):
        name, sep, desc = chunk.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"sub-block {chunk!r} is not 'name = description'")
        if name.strip() in parts:
            raise ValueError(f"sub-block {name.strip()!r} appears twice")
        parts[name.strip()] = _PARENT_SHARE.sub("", desc.strip())
    return parts


def variant_from_key(key: str, stats: dict[str, float]) -> BlockVariant | None:
    """The attention/FFN variant a key names; None for keys with other sub-blocks (e.g. a
    Mamba mixer), which the search handles by key alone."""
    parts = parse_key(key)
    if set(parts) != {"attention", "ffn"}:
        return None
    a, f = parts["attention"], parts["ffn"]
    if m := _KV_HEADS.match(a):
        attention = AttentionVariant(GQA, int(m.group(1)))
    elif a in _KINDS:
        attention = AttentionVariant(_KINDS[a])
    else:
        raise ValueError(f"attention description {a!r} is not 'N kv heads', 'no_op' or 'linear'")
    if m := _FFN_SIZE.match(f):
        width = stats.get("ffn_intermediate_size", float(m.group(1)))
        ffn = FFNVariant(SWIGLU, int(round(width)))
    elif f in _KINDS:
        ffn = FFNVariant(_KINDS[f])
    else:
        raise ValueError(f"ffn description {f!r} is not 'intermediate size N', 'no_op' or 'linear'")
    return BlockVariant(attention, ffn)


@dataclass
class BlockEntry:
    variant: BlockVariant | None  # None: a sub-block kind reforge cannot build (searchable by key)
    stats: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        """The public layout: the key (plus `stats.ffn_intermediate_size`) names the variant."""
        return {"stats": self.stats, "metrics": self.metrics}

    @classmethod
    def from_json(cls, key: str, d: dict) -> "BlockEntry":
        if not isinstance(d, dict) or not isinstance(d.get("stats"), dict):
            raise ValueError("entry needs a 'stats' object")
        for part in ("stats", "metrics"):
            for name, value in d.get(part, {}).items():
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                    raise ValueError(f"{part}.{name} = {value!r} is not a finite number")
        if "variant" in d:
            a, f = d["variant"]["attention"], d["variant"]["ffn"]
            variant = BlockVariant(AttentionVariant(a[0], a[1]), FFNVariant(f[0], f[1]))
        else:
            variant = variant_from_key(key, d["stats"])
        return cls(variant, dict(d["stats"]), dict(d.get("metrics", {})))

    def value(self, name: str) -> float:
        """A dotted field, `stats.memory_mib` or `metrics.kl_div`."""
        part, _, key = name.partition(".")
        table = {"stats": self.stats, "metrics": self.metrics}.get(part)
        if table is None or not key:
            raise KeyError(f"{name!r}: expected 'stats.NAME' or 'metrics.NAME'")
        if key not in table:
            raise KeyError(f"{name!r} missing")
        return float(table[key])


@dataclass
class BlockLibrary:
    layers: list[dict[str, BlockEntry]]  # per layer: key -> entry
    info: dict = field(default_factory=dict)  # measurement setting (batch, seq len, device, dtype)

    def add(self, layer: int, key: str, entry: BlockEntry) -> None:
        while len(self.layers) <= layer:
            self.layers.append({})
        if key in self.layers[layer]:
            raise ValueError(f"layer {layer}: duplicate block-library key {key!r}")
        self.layers[layer][key] = entry

    def to_json(self) -> dict:
        return {f"layer_{i}": {k: e.to_json() for k, e in layer.items()} for i, layer in enumerate(self.layers)}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=2))
        if self.info:
            path.with_name("measurement_info.json").write_text(json.dumps(self.info, indent=2))
        return path

    @classmethod
    def from_json(cls, raw: dict, source: str = "<library>") -> "BlockLibrary":
        if not isinstance(raw, dict) or not raw:
            raise LibraryError(f"{source}: expected a non-empty object of 'layer_N' entries")
        index = {}
        for name in raw:
            m = re.fullmatch(r"layer_(\d+)", name)
            if not m:
                raise LibraryError(f"{source}: top-level key {name!r} is not 'layer_N'")
            index[int(m.group(1))] = name
        missing = sorted(set(range(len(raw))) - set(index))
        if missing:
            raise LibraryError(f"{source}: layers must be numbered 0..{len(raw) - 1}; missing layer_{missing[0]}")
        layers = []
        for i in range(len(raw)):
            entries = raw[index[i]]
            if not isinstance(entries, dict) or not entries:
                raise LibraryError(f"{source}: layer_{i} has no block entries")
            layer = {}
            for key, d in entries.items():
                try:
                    layer[key] = BlockEntry.from_json(key, d)
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    raise LibraryError(f"{source}: layer_{i}, key {key!r}: {e}") from e
            layers.append(layer)
        return cls(layers)

    @classmethod
    def load(cls, path: str | Path) -> "BlockLibrary":
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise LibraryError(f"{path}: not JSON ({e})") from e
        lib = cls.from_json(raw, str(path))
        info_path = path.with_name("measurement_info.json")
        lib.info = json.loads(info_path.read_text()) if info_path.exists() else {}
        return lib


def library_problem(lib: BlockLibrary, objective: str, maxima: dict[str, float], minima: dict[str, float],
                    time_limit_s: float = 60.0, maximize: bool = False) -> tuple[MIPProblem, list[list[str]]]:
    """Any library (e.g. a public Puzzle file) + dotted field names -> the MIP: minimise (or
    maximise) the summed `objective` with each named stat/metric's sum over layers bounded.
    A missing field is an error naming the layer and key."""
    keys = [list(layer) for layer in lib.layers]

    def table(name: str) -> list[list[float]]:
        rows = []
        for i, ks in enumerate(keys):
            row = []
            for k in ks:
                try:
                    row.append(lib.layers[i][k].value(name))
                except KeyError as e:
                    raise KeyError(f"layer_{i}, key {k!r}: {e.args[0]}") from None
            rows.append(row)
        return rows

    sign = -1.0 if maximize else 1.0
    scores = [[sign * v for v in row] for row in table(objective)]
    cons = [Constraint(name, table(name), upper=ub) for name, ub in maxima.items()]
    for name, lb in minima.items():
        cons.append(Constraint(name if name not in maxima else f"{name}>=", table(name), lower=lb))
    return MIPProblem(scores, cons, time_limit_s=time_limit_s), keys
