"""Two evaluation runs side by side: every metric both report, with B - A deltas."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluation.report import plot_accuracy_by_mode

MCQ_METRICS = ("acc", "acc_norm", "macro_f1", "tool_hallucination_rate")


def _flat(m: dict[str, Any]) -> dict[str, float | None]:
    if "acc" in m:
        return {k: m[k] for k in MCQ_METRICS}
    out: dict[str, float | None] = {f"pass@{k}": v for k, v in m["pass@k"].items()}
    out.update({f"cons@{k}": v for k, v in m["cons@k"].items()})
    for key in ("mean@n", "mean_response_tokens", "truncated_rate", "reward_failures"):
        out[key] = m[key]
    return out


def _metrics(results: dict[str, Any], suite: str, mode: str) -> dict[str, float | None]:
    m = results["suites"].get(suite, {}).get(mode)
    return _flat(m) if m else {}


def load_results(run: str | Path) -> dict[str, Any]:
    path = Path(run) / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{run}: no results.json (not a finished evaluation run)")
    return json.loads(path.read_text())


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (suite, mode, metric) present in either run; missing side is None."""
    rows = []
    for suite in sorted(set(a["suites"]) | set(b["suites"])):
        for mode in ("on", "off"):
            ma, mb = _metrics(a, suite, mode), _metrics(b, suite, mode)
            for metric in list(ma) + [k for k in mb if k not in ma]:
                va, vb = ma.get(metric), mb.get(metric)
                delta = vb - va if va is not None and vb is not None else None
                rows.append({"suite": suite, "mode": mode, "metric": metric, "a": va, "b": vb, "delta": delta})
    return rows


def _fmt(v: float | None, sign: str = "") -> str:
    return "–" if v is None else f"{v:{sign}.4g}"


def write_compare(run_dir: Path, run_a: str, run_b: str) -> Path:
    a, b = load_results(run_a), load_results(run_b)
    rows = compare(a, b)
    (run_dir / "compare.json").write_text(json.dumps({"a": str(run_a), "b": str(run_b), "rows": rows}, indent=2))
    lines = ["# Comparison", "", f"- A: `{run_a}` (model `{a['model']}`)", f"- B: `{run_b}` (model `{b['model']}`)",
             "", "| suite | mode | metric | A | B | B − A |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['suite']} | {r['mode']} | {r['metric']} | {_fmt(r['a'])} | {_fmt(r['b'])} | "
                     f"{_fmt(r['delta'], '+')} |")
    for tag, res in (("a", a), ("b", b)):
        png = plot_accuracy_by_mode(res, run_dir / f"accuracy_by_mode_{tag}.png")
        lines += ["", f"{tag.upper()}: ![accuracy by mode, {tag.upper()}]({png.name})"]
    out = run_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out
