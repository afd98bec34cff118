"""One GRPO rollout: prompts -> G samples each -> rewards -> group advantages.

Generation is split into chunks that the engines work through while the driver scores
the chunks already finished, so reward scoring overlaps generation. With dynamic sampling,
groups whose samples all scored alike (no learning signal) are dropped and more prompts
are drawn until the step has enough informative groups or the refill budget is spent.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from core.chat import with_system_prompt
from core.data.schema import Row
from core.engines.base import Completion, SamplingSettings
from core.engines.group import Chunk
from core.tokenization import encode_prompt
from rl.advantages import group_advantages, zero_variance_groups
from rl.batch import RolloutBatch
from rl.config import AlgorithmConfig, RolloutConfig
from rl.scoring import Scorer


@dataclass
class Group:
    row: Row
    completions: list[Completion]
    rewards: list[float]
    accuracy: list[float]
    per_function: dict[str, list[float]]


@dataclass
class Rollout:
    groups: list[Group]
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_batch(self, algo: AlgorithmConfig, overlong_masking: bool) -> RolloutBatch:
        rewards = torch.tensor([g.rewards for g in self.groups], dtype=torch.float32)
        adv = group_advantages(rewards, algo.advantage).flatten().tolist()
        seqs, plens, masks, gen_lp = [], [], [], []
        for g in self.groups:
            for c in g.completions:
                seqs.append(c.prompt_ids + c.token_ids)
                plens.append(len(c.prompt_ids))
                keep = 0 if (overlong_masking and c.finish_reason == "length") else 1
                masks.append([keep] * len(c.token_ids))
                gen_lp.append(c.logprobs)
        return RolloutBatch(seqs, plens, adv, masks, gen_lp)


def prompt_ids(tokenizer, row: Row) -> list[int]:
    return encode_prompt(tokenizer, with_system_prompt(row.prompt_messages, row.reasoning))


def generate_and_score(generators, scorer: Scorer, tokenizer, rows: list[Row], sampling: SamplingSettings,
                       accuracy_reward: str, chunks_per_engine: int = 2) -> tuple[list[Group], dict[str, float]]:
    """Generate `sampling.n` completions per row and score them, overlapping the two. Chunks
    whose engine died are generated again; `generator_faults/*` counts the restarts and
    prompts regenerated since the previous call (an engine that died during a sync included)."""
    timings = {"generate": 0.0, "reward": 0.0}
    prompts = [prompt_ids(tokenizer, r) for r in rows]
    n_chunks = max(1, min(len(rows), len(generators.workers) * chunks_per_engine))
    bounds = [round(i * len(rows) / n_chunks) for i in range(n_chunks + 1)]
    chunks = []
    for c in range(n_chunks):
        lo, hi = bounds[c], bounds[c + 1]
        if lo == hi:
            continue
        chunk_sampling = SamplingSettings(**{**sampling.__dict__, "seed": None if sampling.seed is None else sampling.seed + c})
        chunks.append(Chunk(prompts[lo:hi], chunk_sampling, engine=c % len(generators.workers), tag=lo))
    groups: dict[int, Group] = {}
    waiting_for_generation = 0.0
    start = time.perf_counter()
    finished = generators.as_completed(chunks)
    while True:
        t0 = time.perf_counter()
        done = next(finished, None)
        waiting_for_generation += time.perf_counter() - t0
        if done is None:
            break
        lo, completions = done[0].tag, done[1]
        t1 = time.perf_counter()
        chunk_rows = [rows[lo + c.prompt_index] for c in completions]
        ids = [f"{r.id}#{i % sampling.n}" for i, r in enumerate(chunk_rows)]
        scores = scorer.score(chunk_rows, [c.text for c in completions], ids)
        timings["reward"] += time.perf_counter() - t1
        for i, c in enumerate(completions):
            idx = lo + c.prompt_index
            g = groups.setdefault(idx, Group(rows[idx], [], [], [], {k: [] for k in scores.per_function}))
            g.completions.append(c)
            g.rewards.append(scores.total[i])
            g.accuracy.append(scores.per_function[accuracy_reward][i])
            for k, v in scores.per_function.items():
                g.per_function[k].append(v[i])
        for k, v in scores.failures.items():
            timings[f"reward_failures/{k}"] = timings.get(f"reward_failures/{k}", 0.0) + v
        for k, v in scores.faults.items():
            timings[f"reward_faults/{k}"] = timings.get(f"reward_faults/{k}", 0.0) + v
    for k, v in asdict(generators.take_faults()).items():
        timings[f"generator_faults/{k}"] = float(v)
    # Generation wall time: everything not spent scoring in the driver.
    timings["generate"] = time.perf_counter() - start - timings["reward"]
    timings["generate_wait"] = waiting_for_generation
    return [groups[i] for i in sorted(groups)], timings


def collect_rollout(generators, scorer: Scorer, tokenizer, draw_rows: Callable[[], list[Row]], cfg: RolloutConfig,
                    accuracy_reward: str, seed: int) -> Rollout:
    """Draw prompts, sample, score; with dynamic sampling refill until enough groups inform."""
    kept: list[Group] = []
    metrics = {"groups_sampled": 0.0, "groups_filtered": 0.0, "refill_rounds": 0.0}
    timings: dict[str, float] = {}
    all_groups: list[Group] = []
    for round_ in range(1 + (cfg.max_refill_rounds if cfg.dynamic_sampling else 0)):
        rows = draw_rows()
        sampling = SamplingSettings(n=cfg.samples_per_prompt, temperature=cfg.temperature, top_p=cfg.top_p,
                                    max_tokens=cfg.max_tokens, seed=seed + 100 * round_)
        groups, t = generate_and_score(generators, scorer, tokenizer, rows, sampling, accuracy_reward)
        for k, v in t.items():
            timings[k] = timings.get(k, 0.0) + v
        all_groups += groups
        metrics["groups_sampled"] += len(groups)
        if cfg.dynamic_sampling:
            flat = zero_variance_groups(torch.tensor([g.rewards for g in groups]))
            metrics["groups_filtered"] += float(flat.sum())
            groups = [g for g, f in zip(groups, flat.tolist()) if not f]
        kept += groups
        if len(kept) >= cfg.prompts_per_step or not cfg.dynamic_sampling:
            break
        metrics["refill_rounds"] += 1
    kept = kept[:cfg.prompts_per_step]
    _rollout_metrics(all_groups, kept, metrics)
    return Rollout(kept, metrics, timings)


def _rollout_metrics(all_groups: list[Group], kept: list[Group], metrics: dict[str, float]) -> None:
    """Means over every sample generated this step (not only the kept groups)."""
    samples = [(g, i) for g in all_groups for i in range(len(g.completions))]
    n = max(len(samples), 1)
    metrics["reward_mean"] = sum(g.rewards[i] for g, i in samples) / n
    metrics["accuracy"] = sum(g.accuracy[i] for g, i in samples) / n
    metrics["response_tokens_mean"] = sum(len(g.completions[i].token_ids) for g, i in samples) / n
    metrics["truncated_fraction"] = sum(g.completions[i].finish_reason == "length" for g, i in samples) / n
    for name in (all_groups[0].per_function if all_groups else {}):
        metrics[f"reward/{name}"] = sum(g.per_function[name][i] for g, i in samples) / n
    metrics["groups_kept"] = float(len(kept))
