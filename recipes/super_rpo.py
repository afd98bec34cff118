"""The preference stage (DPO / IPO / SimPO / RPO) of Llama-Nemotron: offline from pairs,
iterative online RPO (LN-Super), or interleaved with GRPO in one Ray job.

    python recipes/super_rpo.py                                   # tiny offline DPO, one process
    python recipes/super_rpo.py config=recipes/configs/super_rpo_online_tiny.yaml
    python recipes/super_rpo.py config=recipes/configs/super_rpo_interleaved_tiny.yaml
    ray job submit --working-dir . -- python recipes/super_rpo.py config=recipes/configs/super_rpo_ln_super.yaml \
        model=/path/to/sft online.prompt_file=/data/helpsteer2_prompts.jsonl

With no `model`, the tiny SFT policy is used (built by the SFT recipe first if absent).
Prints the run directory first and last; writes summary.json (pref_accuracy_before/after on
held-out pairs; for online runs reward_mean_first/last and reward_gain +- reward_gain_se, the
change of the mean reward of own samples measured per held-out prompt) and metrics.jsonl.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `ray job submit --working-dir .` runs from a copy without an install

from core.config import parse_cli  # noqa: E402
from core.paths import runs_root  # noqa: E402
from core.run_dir import RunDir  # noqa: E402
from rl.preference.config import PreferenceConfig  # noqa: E402

DEFAULT_CONFIG = ROOT / "recipes" / "configs" / "super_rpo_tiny.yaml"


def main(argv: list[str] | None = None) -> Path:
    cfg = parse_cli(PreferenceConfig, argv, default_path=DEFAULT_CONFIG, prog="super_rpo.py")
    from rl.preference.pipeline import model_or_default, run

    cfg.model = model_or_default(cfg.model)
    run_dir = RunDir.create(runs_root(), "super_rpo", cfg.run_dir or None)
    cfg.run_dir = str(run_dir.path)
    run_dir.save_config(cfg)
    summary = run(cfg, run_dir)
    run_dir.write_summary(summary)
    line = f"[pref] {cfg.mode} {cfg.loss.preference_loss}: held-out pair accuracy " \
           f"{summary['pref_accuracy_before']:.3f} -> {summary['pref_accuracy_after']:.3f}"
    kinds = sorted(k[len("after_pref_accuracy_"):] for k in summary if k.startswith("after_pref_accuracy_")
                   and k != "after_pref_accuracy_sum")
    if kinds:
        line += " (" + ", ".join(f"{k} {summary[f'before_pref_accuracy_{k}']:.3f} -> "
                                 f"{summary[f'after_pref_accuracy_{k}']:.3f}" for k in kinds) + ")"
    if "reward_mean_first" in summary:
        line += (f"; mean reward of own samples {summary['reward_mean_first']:.3f} -> {summary['reward_mean_last']:.3f}"
                 f" (change {summary['reward_gain']:+.3f} +- {summary['reward_gain_se']:.3f}, paired by prompt)")
    print(line, flush=True)
    run_dir.finish()
    return run_dir.path


if __name__ == "__main__":
    main()
