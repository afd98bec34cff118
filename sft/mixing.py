"""The reasoning-toggle data mix: per-domain weights, an on/off ratio per domain, and paired
on/off responses to the same prompt (Llama-Nemotron §3.2: reasoning prompts also get an
"off" response, so the model learns that only the system prompt decides the mode)."""
from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class DomainMix:
    weight: float = field(default=1.0, metadata={"help": "relative share of the mixed samples"})
    on_fraction: float = field(default=0.5, metadata={"help": (
        "share of \"detailed thinking on\" samples in this domain")})


@dataclass
class MixConfig:
    """How many samples to draw and from where. `num_samples` 0 = as many as the data has."""

    num_samples: int = field(default=0, metadata={"help": "samples drawn in all; 0 = as many as the data has"})
    paired: bool = field(default=True, metadata={"help": (
        "off samples reuse the prompts of the chosen on samples first")})
    domains: dict[str, DomainMix] = field(
        default_factory=lambda: {"math": DomainMix(weight=0.8), "code": DomainMix(weight=0.2)},
        metadata={"help": "domain -> its weight in the mix and its share of reasoning-on samples"})
    seed: int = field(default=0, metadata={"help": "seed of the draw"})


def domain_of(row: dict) -> str:
    """meta.domain if given, else the reward type (math, code, ...), else chat."""
    meta = row.get("meta") or {}
    return meta.get("domain") or (row.get("reward") or {}).get("type") or "chat"


def prompt_key(row: dict) -> str:
    return json.dumps([m for m in row["messages"] if m["role"] not in ("system", "assistant")])


def _draw(pool: list[dict], n: int, rng: random.Random) -> list[dict]:
    """n rows without replacement while the pool lasts, then further shuffled passes."""
    out: list[dict] = []
    while len(out) < n and pool:
        take = pool[:]
        rng.shuffle(take)
        out += take[:n - len(out)]
    return out


def mix(rows: list[dict], cfg: MixConfig) -> tuple[list[dict], dict[str, dict[str, int]]]:
    """Draw the mixed, shuffled sample list; also return counts per domain and mode.

    Domains with weight but no rows are reported with zero counts and their share is
    renormalised over the domains present (the Table 2 mix on math+code-only data).
    """
    rng = random.Random(cfg.seed)
    by_domain: dict[str, dict[str, list[dict]]] = defaultdict(lambda: {"on": [], "off": []})
    for r in rows:
        by_domain[domain_of(r)][r.get("reasoning", "on")].append(r)
    present = {d: m for d, m in cfg.domains.items() if m.weight > 0 and d in by_domain}
    total_w = sum(m.weight for m in present.values())
    total = cfg.num_samples or sum(len(by_domain[d]["on"]) + len(by_domain[d]["off"]) for d in present)
    out: list[dict] = []
    counts = {d: {"on": 0, "off": 0} for d in cfg.domains}
    for d, m in present.items():
        n = round(total * m.weight / total_w)
        n_on = round(n * m.on_fraction)
        on = _draw(by_domain[d]["on"], n_on, rng)
        off_pool = by_domain[d]["off"][:]
        rng.shuffle(off_pool)
        if cfg.paired:  # partners of the chosen on prompts first, then the rest
            chosen = {prompt_key(r) for r in on}
            off_pool.sort(key=lambda r: prompt_key(r) not in chosen)
        off = [off_pool[i % len(off_pool)] for i in range(n - n_on)] if off_pool else []
        out += on + off
        counts[d] = {"on": len(on), "off": len(off)}
    rng.shuffle(out)
    return out, counts
