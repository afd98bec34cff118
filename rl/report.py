"""End-of-run Markdown summary with reward / accuracy curves a person can look at."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(history: list[dict[str, Any]], out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in history if "reward_mean" in r]
    evals = [r for r in history if any(k.startswith("heldout_") for k in r)]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    axes[0].plot([r["step"] for r in steps], [r["reward_mean"] for r in steps], label="reward (mean)")
    axes[0].plot([r["step"] for r in steps], [r["accuracy"] for r in steps], label="train accuracy")
    axes[0].set_title("rollouts")
    axes[1].set_prop_cycle(color=plt.cm.tab20.colors)  # up to 20 lines with tools on and off
    for key in sorted({k for r in evals for k in r if k.startswith("heldout_")}):
        pts = [(r["step"], r[key]) for r in evals if key in r]
        kind = "sampled" if key.startswith("heldout_mean_") else "greedy"
        name = key.split("accuracy_", 1)[1]
        if name.endswith("_tool_call_rate"):  # environments: the share of episodes that called a tool
            axes[1].plot(*zip(*pts), marker="x", linestyle=":",
                         label=f"{name.removesuffix('_tool_call_rate')} {kind}, tool-call rate")
            continue
        mode, _, level = name.partition("_l")
        if level and kind == "sampled":
            continue  # per-level lines for the greedy metric only: the plot stays readable
        axes[1].plot(*zip(*pts), marker="o", linestyle="--" if level else "-", linewidth=2 if not level else 1,
                     label=f"{mode} {kind}, level {level}" if level else f"{mode} {kind}, all")
    axes[1].set_title("held-out accuracy (and tool-call rate)")
    axes[2].plot([r["step"] for r in steps], [r["response_tokens_mean"] for r in steps], label="response tokens")
    axes[2].set_title("response length")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def _timing_table(history: list[dict[str, Any]]) -> list[str]:
    steps = [r for r in history if "time/step" in r]
    if not steps:
        return []
    keys = ["time/generate", "time/reward", "time/logprobs", "time/train", "time/sync", "time/step"]
    lines = ["| phase | mean seconds per step |", "|---|---|"]
    for k in keys:
        vals = [r.get(k, 0.0) for r in steps]
        lines.append(f"| {k.split('/')[1]} | {sum(vals) / len(vals):.3f} |")
    return lines


def _level_table(summary: dict[str, Any]) -> list[str]:
    keys = sorted(k[len("before_"):] for k in summary if k.startswith("before_heldout_"))
    if len(keys) < 2:
        return []
    lines = ["| held-out metric | before | after |", "|---|---|---|"]
    for k in keys:
        lines.append(f"| {k} | {summary['before_' + k]:.3f} | {summary.get('after_' + k, float('nan')):.3f} |")
    return lines


def _sampled_lines(summary: dict[str, Any]) -> list[str]:
    """The held-out accuracy at the sampling protocol, per mode, when the run measured it."""
    lines = []
    for key in sorted(summary):
        head, _, mode = key.partition("before_heldout_mean_accuracy_")
        if head or not mode or "_l" in mode:
            continue
        before, after = summary[key], summary.get(f"after_heldout_mean_accuracy_{mode}", float("nan"))
        lines.append(f"- held-out accuracy (`{mode}`, mean over samples at the eval protocol): "
                     f"{before:.3f} -> {after:.3f} ({100 * (after - before):+.1f} points)")
    return lines


def write_report(run_dir: Path, summary: dict[str, Any], history: list[dict[str, Any]]) -> Path:
    png = plot_curves(history, run_dir / "curves.png")
    lines = [
        "# GRPO run summary", "",
        f"- held-out accuracy (`on`, greedy): **{summary['accuracy_before']:.3f} -> {summary['accuracy_after']:.3f}**"
        f" ({100 * (summary['accuracy_after'] - summary['accuracy_before']):+.1f} points)",
        *_sampled_lines(summary),
        f"- steps: {summary['steps']}, wall time: {summary.get('seconds_total', 0):.0f} s,"
        f" generator engine: {summary.get('generator_engine')}",
        f"- max |logprob diff| generator vs trainer after sync: {summary['max_sync_logprob_diff']:.2e}", "",
        f"![curves]({png.name})", "", *_level_table(summary), "", "## Where the time goes", "", *_timing_table(history), "",
    ]
    out = run_dir / "report.md"
    out.write_text("\n".join(lines))
    return out
