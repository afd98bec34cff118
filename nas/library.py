"""The block library: per layer, per block variant, its costs (`stats`) and its quality
(`metrics`), in the public Puzzle JSON layout:

    {"layer_0": {"attention = ... \t&&\tffn = ...": {"stats": {...}, "metrics": {...}}}}

Stats used by the search: `num_params`, `memory_mib` (parameters), `kv_bytes_per_token`,
`runtime_ms` (decode step) and `prefill_ms`, with `attention_*` / `ffn_*` splits as in
the public file; metrics: `kl_div`, `lm_loss`. Each entry also records its variant, so
nothing has to be parsed back out of the key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from nas.space import AttentionVariant, BlockVariant, FFNVariant


@dataclass
class BlockEntry:
    variant: BlockVariant
    stats: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        v = self.variant
        return {"stats": self.stats, "metrics": self.metrics,
                "variant": {"attention": [v.attention.kind, v.attention.kv_heads], "ffn": [v.ffn.kind, v.ffn.width]}}

    @classmethod
    def from_json(cls, d: dict) -> "BlockEntry":
        a, f = d["variant"]["attention"], d["variant"]["ffn"]
        return cls(BlockVariant(AttentionVariant(a[0], a[1]), FFNVariant(f[0], f[1])), dict(d["stats"]),
                   dict(d.get("metrics", {})))


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
    def load(cls, path: str | Path) -> "BlockLibrary":
        path = Path(path)
        raw = json.loads(path.read_text())
        layers = [{k: BlockEntry.from_json(e) for k, e in raw[f"layer_{i}"].items()} for i in range(len(raw))]
        info_path = path.with_name("measurement_info.json")
        return cls(layers, json.loads(info_path.read_text()) if info_path.exists() else {})
