"""report.md with its PNG plots: accuracy by mode, pass@k curves, response-length histograms."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

MODE_COLOURS = {"on": "tab:blue", "off": "tab:orange"}


def _accuracy(m: dict[str, Any]) -> float:
    """The headline accuracy of a suite: pass@1 (mean correctness) or MCQ acc_norm."""
    return m["acc_norm"] if "acc_norm" in m else m["pass@k"]["1"]


def plot_accuracy_by_mode(results: dict[str, Any], path: Path) -> Path:
    suites = list(results["suites"])
    modes = results["modes"]
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(suites)), 3.2))
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        xs = [j + i * width for j in range(len(suites))]
        ys = [_accuracy(results["suites"][s][mode]) if mode in results["suites"][s] else 0.0 for s in suites]
        ax.bar(xs, ys, width, label=f"reasoning {mode}", color=MODE_COLOURS[mode])
    ax.set_xticks([j + width * (len(modes) - 1) / 2 for j in range(len(suites))], suites)
    ax.set_ylim(0, 1)
    ax.set_ylabel("pass@1 (MCQ: acc_norm)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_pass_at_k(results: dict[str, Any], path: Path) -> Path:
    """One panel per generation suite, a curve per mode (a greedy mode is a single point)."""
    suites = [s for s, modes in results["suites"].items() if any("pass@k" in m for m in modes.values())]
    fig, axes = plt.subplots(1, len(suites), figsize=(3.5 * len(suites), 3), squeeze=False)
    for ax, suite in zip(axes[0], suites):
        for mode, m in results["suites"][suite].items():
            ks = sorted(int(k) for k in m["pass@k"])
            ax.plot(ks, [m["pass@k"][str(k)] for k in ks], "-o", label=mode, color=MODE_COLOURS[mode])
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_title(suite)
        ax.set_xlabel("k")
        ax.set_ylim(0, 1)
        ax.legend()
    axes[0][0].set_ylabel("pass@k")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_lengths(records: list[dict[str, Any]], modes: list[str], path: Path) -> Path:
    suites = sorted({r["suite"] for r in records if r["kind"] == "generate"})
    fig, axes = plt.subplots(1, max(len(suites), 1), figsize=(3.5 * max(len(suites), 1), 3), squeeze=False)
    for ax, suite in zip(axes[0], suites):
        for mode in modes:
            lengths = [s["n_tokens"] for r in records if r["suite"] == suite and r["mode"] == mode
                       for s in r["samples"]]
            if lengths:
                ax.hist(lengths, bins=20, alpha=0.6, label=mode, color=MODE_COLOURS[mode], density=True)
        ax.set_title(suite)
        ax.set_xlabel("response tokens")
        ax.legend()
    axes[0][0].set_ylabel("density")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _generation_table(results: dict[str, Any]) -> list[str]:
    ks = results["ks"]
    head = (["suite", "mode", "prompts", "samples/prompt"] + [f"pass@{k}" for k in ks]
            + [f"cons@{k}" for k in ks] + ["mean@n", "tokens", "truncated %", "reward failures"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for suite, modes in results["suites"].items():
        for mode, m in modes.items():
            if "pass@k" not in m:
                continue
            cells = [suite, mode, str(m["prompts"]), str(m["samples"] // max(m["prompts"], 1))]
            cells += [_pct(m["pass@k"].get(str(k))) for k in ks] + [_pct(m["cons@k"].get(str(k))) for k in ks]
            cells += [f"{m['mean@n']:.3f}", f"{m['mean_response_tokens']:.1f}", _pct(m["truncated_rate"]),
                      str(m["reward_failures"])]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _mcq_table(results: dict[str, Any]) -> list[str]:
    rows = [(s, mode, m) for s, modes in results["suites"].items() for mode, m in modes.items() if "acc" in m]
    if not rows:
        return []
    lines = ["", "Multiple choice (log-likelihood):", "",
             "| suite | mode | items | acc | acc_norm | macro-F1 | tool hallucination |", "|---|---|---|---|---|---|---|"]
    for suite, mode, m in rows:
        lines.append(f"| {suite} | {mode} | {m['n']} | {_pct(m['acc'])} | {_pct(m['acc_norm'])} | "
                     f"{_pct(m['macro_f1'])} | {_pct(m['tool_hallucination_rate'])} "
                     f"(of {m['tool_hallucination_n']}) |")
    return lines


def _difficulty_table(results: dict[str, Any]) -> list[str]:
    groups = [(s, mode, {k: v for k, v in m.get("by_difficulty", {}).items() if k != "None"})
              for s, modes in results["suites"].items() for mode, m in modes.items()]
    groups = [g for g in groups if len(g[2]) > 1]
    if not groups:
        return []
    levels = sorted({k for _, _, d in groups for k in d}, key=lambda k: (len(k), k))
    lines = ["", "pass@1 by difficulty:", "", "| suite | mode | " + " | ".join(levels) + " |",
             "|---|---|" + "---|" * len(levels)]
    for suite, mode, d in groups:
        lines.append(f"| {suite} | {mode} | "
                     + " | ".join(_pct(d[k]["pass@k"]["1"]) if k in d else "–" for k in levels) + " |")
    return lines


def write_report(run_dir: Path, results: dict[str, Any], records: list[dict[str, Any]]) -> Path:
    run_dir = Path(run_dir)
    acc = plot_accuracy_by_mode(results, run_dir / "accuracy_by_mode.png")
    lines = [f"# Evaluation of `{results['model']}`", "",
             "Protocol: " + ", ".join(f"`{m}` T={p['temperature']} top-p={p['top_p']} × {p['samples']}"
                                      for m, p in results["protocol"]["sampling"].items() if m in results["modes"])
             + f", max {results['protocol']['max_tokens']} tokens.", "",
             *_generation_table(results), *_mcq_table(results), *_difficulty_table(results), "",
             f"Reward failures (raised or timed out, scored 0): {results['reward_failures']['total']}"
             + (f" {results['reward_failures']['by_reward_type']}" if results['reward_failures']['total'] else ""),
             "", f"![accuracy by mode]({acc.name})"]
    if any(r["kind"] == "generate" for r in records):
        pk = plot_pass_at_k(results, run_dir / "pass_at_k.png")
        ln = plot_lengths(records, results["modes"], run_dir / "response_lengths.png")
        lines += ["", f"![pass@k]({pk.name})", "", f"![response lengths]({ln.name})"]
    if results["skipped_rows"]:
        lines += ["", f"Malformed rows skipped: {results['skipped_rows']}"]
    out = run_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out
