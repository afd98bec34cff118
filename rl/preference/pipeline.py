"""What recipes/super_rpo.py runs: pair data, then offline / online / interleaved training.

Each `run_*` returns the summary's figures; the recipe writes them to summary.json.
"""
from __future__ import annotations

from typing import Any

from transformers import AutoTokenizer

from core.data.schema import Row
from core.metrics import MetricsWriter
from core.run_dir import RunDir
from rl.preference.batch import PairBatch
from rl.preference.config import PreferenceConfig
from rl.preference.data import PreferencePair, encode_pairs, load_pairs
from rl.preference.synthetic import if_pairs, math_pairs, prompt_rows
from rl.preference.when2call import pairs_from_items, synthetic_items


def synthetic_pairs(n_math: int, n_if: int, n_tool: int, seed: int) -> list[PreferencePair]:
    return (math_pairs(n_math, seed) + if_pairs(n_if, seed + 1)
            + pairs_from_items(synthetic_items(n_tool, seed + 2), seed + 3))


def pair_sets(cfg: PreferenceConfig) -> tuple[list[PreferencePair], list[PreferencePair]]:
    d = cfg.data
    if d.train_file:
        train = load_pairs(d.train_file, d.format, d.on_malformed_row).rows
    else:
        train = synthetic_pairs(d.synthetic_math, d.synthetic_if, d.synthetic_tool, 10_000 + d.seed)
    if d.test_file:
        test = load_pairs(d.test_file, d.format, d.on_malformed_row).rows
    else:
        k = d.synthetic_test_per_kind
        test = synthetic_pairs(k, k, k, 20_000 + d.seed)
    return train, test


def encoded_pair_sets(cfg: PreferenceConfig, tokenizer) -> tuple[PairBatch, PairBatch, dict[str, Any]]:
    train, test = pair_sets(cfg)
    train_b, long_train = encode_pairs(tokenizer, train, cfg.data.max_len)
    test_b, long_test = encode_pairs(tokenizer, test, cfg.data.max_len)
    for name, n in (("train", len(long_train)), ("held-out", len(long_test))):
        if n:
            print(f"[pref] {n} {name} pairs longer than data.max_len={cfg.data.max_len} left out", flush=True)
    return train_b, test_b, {"pairs_too_long": len(long_train) + len(long_test)}


def run_offline(cfg: PreferenceConfig, run: RunDir) -> dict[str, Any]:
    from core.checkpointer import Checkpointer
    from rl.preference.offline import train_offline

    tokenizer = AutoTokenizer.from_pretrained(cfg.model, local_files_only=True)
    train, test, info = encoded_pair_sets(cfg, tokenizer)
    cfg.train.total_steps = cfg.steps
    policy = _policy(cfg)
    metrics = MetricsWriter(run.path, cfg.logging)
    ckpt_dir = run.path / "checkpoints"
    resume_from = Checkpointer(ckpt_dir).resolve(cfg.resume)
    try:
        summary = train_offline(policy, train, test, cfg.loss, cfg.steps, cfg.batch_size, cfg.eval_every, metrics,
                                cfg.seed, ckpt_dir, cfg.checkpoint_every, resume_from)
        policy.save_hf(str(run.path / "policy"))
    finally:
        metrics.close()
        policy.shutdown()
    return {**summary, **info, "mode": "offline", "loss": cfg.loss.preference_loss, "model": cfg.model,
            "final_policy": str(run.path / "policy")}


def _policy(cfg: PreferenceConfig):
    if cfg.backend == "local":
        from rl.preference.policy import LocalPolicy

        if cfg.cpu_threads:
            import torch

            torch.set_num_threads(cfg.cpu_threads)
        return LocalPolicy(cfg.model, cfg.train, cfg.micro_batch_size, cfg.packing)
    if cfg.backend != "ray":
        raise ValueError(f"backend must be local or ray, got {cfg.backend!r}")
    from core.ray_utils import init_ray
    from rl.actors import PolicyGroup

    init_ray(cfg.ray_address)
    return PolicyGroup(cfg.model, cfg.train, cfg.placement, keep_reference=False,
                       micro_batch_size=cfg.micro_batch_size, packing=cfg.packing)


def online_rows(cfg: PreferenceConfig, n: int, seed: int) -> list[Row]:
    o = cfg.online
    if o.prompts == "math":
        from rl.trainer import synthetic_rows

        return synthetic_rows(n, seed, list(o.levels), ["on"], "online")
    builders = {"if": lambda: if_pairs(n, seed), "tool": lambda: pairs_from_items(synthetic_items(n, seed), seed)}
    if o.prompts == "mix":
        return prompt_rows(math_pairs(n // 3, seed, tuple(o.levels)) + if_pairs(n // 3, seed) +
                           pairs_from_items(synthetic_items(n // 3, seed), seed, corruption_ratio=0.0))
    if o.prompts not in builders:
        raise ValueError(f"online.prompts must be math, if, tool or mix, got {o.prompts!r}")
    return prompt_rows(builders[o.prompts]())


def run_online(cfg: PreferenceConfig, run: RunDir) -> dict[str, Any]:
    from core.checkpointer import POLICY_HF, Checkpointer
    from core.ray_utils import init_ray
    from rl.actors import GeneratorGroup, PolicyGroup
    from rl.preference.online import OnlineRPO
    from rl.reward_adapter import build_scorer
    from rl.trainer import load_task_rows

    o = cfg.online
    cfg.train.total_steps = o.iterations * o.steps_per_iteration
    init_ray(cfg.ray_address)
    scorer = build_scorer(cfg.reward)
    if o.prompt_file:
        rows = load_task_rows(o.prompt_file, cfg.data.on_malformed_row)
        train_rows, eval_rows = rows[o.eval_prompts:], rows[:o.eval_prompts]
    else:
        train_rows = online_rows(cfg, o.synthetic_prompts, 10_000 + cfg.seed)
        eval_rows = online_rows(cfg, o.eval_prompts, 20_000 + cfg.seed)[:o.eval_prompts]
    tokenizer = AutoTokenizer.from_pretrained(cfg.model, local_files_only=True)
    policy = PolicyGroup(cfg.model, cfg.train, cfg.placement, keep_reference=False,
                         micro_batch_size=cfg.micro_batch_size, packing=cfg.packing)
    checkpointer = Checkpointer(run.path / "checkpoints")
    resume_from = checkpointer.resolve(cfg.resume)
    # generators restart from the checkpoint's HF export; the policy from the starting model + its state
    generators = GeneratorGroup(str(resume_from / POLICY_HF) if resume_from else cfg.model, cfg.generator,
                                cfg.placement, seed=cfg.seed)
    metrics = MetricsWriter(run.path, cfg.logging)
    try:
        loop = OnlineRPO(policy, generators, scorer, tokenizer, cfg.loss, o, cfg.reward.accuracy_reward, cfg.sync,
                         cfg.seed)
        summary = loop.run(train_rows, eval_rows, metrics, checkpointer=checkpointer,
                           checkpoint_every=cfg.checkpoint_every, resume_from=resume_from)
        # held-out pair accuracy is reported for online runs too (the synthetic / given pairs)
        _, test, _ = encoded_pair_sets(cfg, tokenizer)
        policy.save_hf(str(run.path / "policy"))
    finally:
        metrics.close()
        generators.shutdown()
        policy.shutdown()
        scorer.close()
    return {**summary, **pair_accuracy_before_after(cfg.model, str(run.path / "policy"), test, cfg),
            "mode": "online", "loss": cfg.loss.preference_loss, "model": cfg.model,
            "final_policy": str(run.path / "policy")}


def pair_accuracy_before_after(before_dir: str, after_dir: str, test: PairBatch,
                               cfg: PreferenceConfig) -> dict[str, float]:
    """Held-out pair accuracy of two checkpoints, in this process (runs driven by Ray actors)."""
    from core.training import TrainConfig
    from rl.preference.policy import LocalPolicy, heldout_accuracy

    out = {}
    for tag, d in (("before", before_dir), ("after", after_dir)):
        out[f"pref_accuracy_{tag}"] = heldout_accuracy(LocalPolicy(d, TrainConfig(), cfg.micro_batch_size, cfg.packing),
                                                       test)["pref_accuracy"]
    return out


def run_interleaved(cfg: PreferenceConfig, run: RunDir) -> dict[str, Any]:
    from core.ray_utils import init_ray
    from rl.preference.interleave import PreferenceHook, offline_source
    from rl.preference.online import prompts_to_draw, sample_pairs
    from rl.reward_adapter import build_scorer
    from rl.trainer import GRPOTrainer, synthetic_rows

    g = cfg.grpo
    g.model, g.run_dir, g.seed = cfg.model, str(run.path), cfg.seed
    init_ray(cfg.ray_address)
    grpo_scorer = build_scorer(g.reward)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model, local_files_only=True)
    train_pairs, test, info = encoded_pair_sets(cfg, tokenizer)
    pref_scorer = None
    if cfg.interleave.source == "offline":
        source = offline_source(train_pairs, cfg.batch_size, cfg.seed)
    elif cfg.interleave.source == "online":
        pref_scorer = build_scorer(cfg.reward)
        rows = online_rows(cfg, cfg.online.synthetic_prompts, 30_000 + cfg.seed)

        def source(trainer, step, m):
            import random

            pick = random.Random(step * 100 + m).sample(rows, min(prompts_to_draw(cfg.online), len(rows)))
            batch, rec = sample_pairs(trainer.generators, pref_scorer, tokenizer, pick, cfg.online,
                                      cfg.reward.accuracy_reward, seed=step * 100 + m)
            return batch, {"reward_mean": rec["reward_mean"], "pairs": rec["pairs"]}
    else:
        raise ValueError(f"interleave.source must be offline or online, got {cfg.interleave.source!r}")
    d = g.data
    train_rows = synthetic_rows(d.synthetic_train_prompts, 10_000 + d.seed, d.synthetic_levels, d.reasoning_modes,
                                "train")
    test_rows = synthetic_rows(d.synthetic_test_prompts, 20_000 + d.seed, d.synthetic_levels, ["on"], "test")
    trainer = GRPOTrainer(g, run, train_rows, test_rows, grpo_scorer)
    trainer.step_hooks.append(PreferenceHook(cfg.interleave, cfg.loss, source))
    try:
        result = trainer.train()
    finally:
        trainer.shutdown()
        grpo_scorer.close()
        if pref_scorer is not None:
            pref_scorer.close()
    final = result.summary["final_policy"]
    pref_records = [r for r in result.history if any(k.startswith("pref/") for k in r)]
    return {**result.summary, **info, **pair_accuracy_before_after(cfg.model, final, test, cfg),
            "mode": "interleaved", "loss": cfg.loss.preference_loss, "preference_blocks": len(pref_records),
            "grpo_steps": g.steps}


RUNNERS = {"offline": run_offline, "online": run_online, "interleaved": run_interleaved}


def run(cfg: PreferenceConfig, run_dir: RunDir) -> dict[str, Any]:
    return RUNNERS[cfg.mode](cfg, run_dir)


def model_or_default(model: str) -> str:
    if model:
        return model
    from sft.default_policy import ensure_tiny_sft_policy

    return str(ensure_tiny_sft_policy())


