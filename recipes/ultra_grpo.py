"""GRPO on vLLM generators in Ray actors: the reasoning-RL stage of LN-Ultra.

    python recipes/ultra_grpo.py                      # tiny default, starts a local Ray
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python recipes/ultra_grpo.py
    python recipes/ultra_grpo.py config=recipes/configs/ultra_grpo_ln_ultra.yaml model=/path/to/sft

With no `model`, the tiny SFT policy is used (built by the SFT recipe first if absent); with
`environment.name: tools`, its tool-use variant (recipes/configs/nano_sft_tools_tiny.yaml).
Prints the run directory first and last; writes summary.json, metrics.jsonl, report.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `ray job submit --working-dir .` runs from a copy without an install

from core.config import parse_cli  # noqa: E402
from core.paths import runs_root  # noqa: E402
from core.ray_utils import init_ray  # noqa: E402
from core.run_dir import RunDir  # noqa: E402
from rl.config import GRPOConfig  # noqa: E402

DEFAULT_CONFIG = ROOT / "recipes" / "configs" / "ultra_grpo_tiny.yaml"


def main(argv: list[str] | None = None) -> Path:
    cfg = parse_cli(GRPOConfig, argv, default_path=DEFAULT_CONFIG, prog="ultra_grpo.py")
    from rl.reward_adapter import build_scorer, reward_spec
    from rl.report import write_report
    from rl.trainer import GRPOTrainer, load_task_rows, synthetic_rows

    try:
        reward_spec(cfg.reward)  # an unknown reward name fails here, before any actor starts
    except (KeyError, ValueError) as e:
        print(f"config error: reward: {e}", file=sys.stderr)
        sys.exit(2)
    if not cfg.model:  # the tiny SFT policy; its tool-use variant for environment.name=tools
        from sft.default_policy import ensure_default_policy

        cfg.model = str(ensure_default_policy(cfg.environment.name))
    d = cfg.data
    if d.train_file:
        train_rows = load_task_rows(d.train_file, d.on_malformed_row)
    else:
        train_rows = synthetic_rows(d.synthetic_train_prompts, 10_000 + d.seed, d.synthetic_levels,
                                    d.reasoning_modes, "train")
    if cfg.environment.decision_prompts:  # When2Call rows: GRPO trains the call / ask / cannot decision
        from rl.tool_environment import decision_rows

        train_rows += decision_rows(cfg.environment.decision_prompts, 10_000 + d.seed, d.reasoning_modes)
    if d.test_file:
        test_rows = load_task_rows(d.test_file, d.on_malformed_row)
    else:
        test_rows = synthetic_rows(d.synthetic_test_prompts, 20_000 + d.seed, d.synthetic_levels, ["on"], "test")
    run = RunDir.create(runs_root(), "ultra_grpo", cfg.run_dir or None)
    cfg.run_dir = str(run.path)
    run.save_config(cfg)
    init_ray(cfg.ray_address)
    scorer = build_scorer(cfg.reward)
    trainer = GRPOTrainer(cfg, run, train_rows, test_rows, scorer)
    try:
        result = trainer.train()
    finally:
        trainer.shutdown()
        scorer.close()
    run.write_summary(result.summary)
    summary = {**result.summary, "seconds_total": run.elapsed()}
    report = write_report(run.path, summary, result.history)
    print(f"[grpo] held-out accuracy (on): {summary['accuracy_before']:.3f} -> {summary['accuracy_after']:.3f}; "
          f"report: {report}", flush=True)
    bare = f"heldout_accuracy_{cfg.eval.modes[0]}_no_tools"
    if f"before_{bare}" in summary:
        print(f"[grpo] without tools: {summary[f'before_{bare}']:.3f} -> {summary[f'after_{bare}']:.3f}; "
              f"tool-call rate (with tools): {summary['tool_call_rate']:.3f}", flush=True)
    run.finish()
    return run.path


if __name__ == "__main__":
    main()
