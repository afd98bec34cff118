"""Aggregate stored generations into results.json (keys documented in evaluation/README.md).

Everything here is a pure function of the stored records and the protocol, so a resumed
run and a single run with the same records produce the same file.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Callable

import numpy as np

from evaluation.config import EvalConfig
from evaluation.metrics import cons_at_k, mean_at_n, pass_at_k, valid_ks
from evaluation.when2call import mcq_metrics


def generation_metrics(records: list[dict[str, Any]], ks: list[int]) -> dict[str, Any]:
    """pass@k, cons@k, mean@n and length figures over the prompts of one group."""
    if not records:
        return {"prompts": 0}
    ns = [len(r["samples"]) for r in records]
    ks = valid_ks(ks, min(ns))
    correct = [[s["correct"] for s in r["samples"]] for r in records]
    answers = [[s["answer"] for s in r["samples"]] for r in records]
    tokens = [s["n_tokens"] for r in records for s in r["samples"]]
    return {
        "prompts": len(records),
        "samples": sum(ns),
        "pass@k": {str(k): float(np.mean([pass_at_k(len(c), sum(c), k) for c in correct])) for k in ks},
        "cons@k": {str(k): float(np.mean([cons_at_k(a, c, k) for a, c in zip(answers, correct)])) for k in ks},
        "mean@n": float(np.mean([mean_at_n([s["score"] for s in r["samples"]]) for r in records])),
        "mean_response_tokens": float(np.mean(tokens)),
        "truncated_rate": float(np.mean([s["finish_reason"] == "length" for r in records for s in r["samples"]])),
        "reward_failures": sum(s["failed"] for r in records for s in r["samples"]),
    }


def _breakdown(records: list[dict[str, Any]], key: Callable[[dict], Any], ks: list[int]) -> dict[str, Any]:
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        groups[str(key(r))].append(r)
    return {name: generation_metrics(rs, ks) for name, rs in sorted(groups.items())}


def aggregate(records: list[dict[str, Any]], cfg: EvalConfig, skipped_rows: dict[str, int]) -> dict[str, Any]:
    by_suite_mode: dict[tuple[str, str], list] = defaultdict(list)
    for r in records:
        by_suite_mode[(r["suite"], r["mode"])].append(r)
    suites: dict[str, dict[str, Any]] = defaultdict(dict)
    overall: dict[str, Any] = {}
    failures: Counter = Counter()
    for mode in cfg.modes:
        pooled = []
        for (suite, m), rs in by_suite_mode.items():
            if m != mode:
                continue
            rs = sorted(rs, key=lambda r: r["key"])
            if rs[0]["kind"] == "mcq":
                suites[suite][mode] = mcq_metrics(rs)
                continue
            pooled += rs
            entry = generation_metrics(rs, cfg.ks)
            entry["by_source"] = _breakdown(rs, lambda r: r["source"], cfg.ks)
            entry["by_difficulty"] = _breakdown(rs, lambda r: r["difficulty"], cfg.ks)
            suites[suite][mode] = entry
            for r in rs:
                failures[r["reward_type"]] += sum(s["failed"] for s in r["samples"])
        if pooled:
            overall[mode] = generation_metrics(pooled, cfg.ks)
    return {
        "model": cfg.model,
        "protocol": cfg.protocol(),
        "modes": list(cfg.modes),
        "ks": sorted(set(cfg.ks)),
        "suites": {s: dict(sorted(v.items())) for s, v in sorted(suites.items())},
        "overall": overall,
        "reward_failures": {"total": sum(failures.values()), "by_reward_type": dict(sorted(failures.items()))},
        "skipped_rows": dict(sorted(skipped_rows.items())),
    }


def headline(results: dict[str, Any]) -> dict[str, float]:
    """Flat figures for summary.json: `<suite>/<mode>/<metric>`."""
    flat: dict[str, float] = {}
    for suite, modes in results["suites"].items():
        for mode, m in modes.items():
            if "acc" in m:
                for key in ("acc", "acc_norm", "macro_f1", "tool_hallucination_rate"):
                    if m[key] is not None:
                        flat[f"{suite}/{mode}/{key}"] = m[key]
                continue
            for k, v in m.get("pass@k", {}).items():
                flat[f"{suite}/{mode}/pass@{k}"] = v
            flat[f"{suite}/{mode}/mean@n"] = m["mean@n"]
            flat[f"{suite}/{mode}/mean_response_tokens"] = m["mean_response_tokens"]
    flat["reward_failures"] = results["reward_failures"]["total"]
    return flat
