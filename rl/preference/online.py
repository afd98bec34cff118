"""Online (iterative) RPO: the policy's own samples, scored, paired, trained on.

Each step samples K responses per prompt with the generators, scores them with the reward
functions, turns each prompt's samples into pairs (all pairs, or best vs worst) whose
explicit rewards are the scores, takes one preference step and re-syncs the generators.
At the start of every iteration the reference is reset to the current policy, as
LN-Super's iterative online RPO did (METHODS §1.7); with `reset_reference: step` it is reset
before every step, which makes all-pairs `rpo_sq` the leave-one-out REINFORCE (RLOO)
gradient (METHODS §3.1).

With a checkpointer the run is saved at iteration ends (every `checkpoint_every`
iterations): the next iteration resets the reference to the policy, so the policy's
resume state, the prompt-drawing RNG, the parity probe and the per-prompt evaluations
are all a resumed run needs to reproduce the uninterrupted one.
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable

import torch

from core.checkpointer import Checkpointer
from core.data.schema import Row
from core.engines.base import SamplingSettings
from core.metrics import MetricsWriter, Progress
from rl.advantages import zero_variance_groups
from rl.batch import RolloutBatch
from rl.preference.batch import PairBatch
from rl.preference.config import PAIRINGS, OnlineConfig
from rl.preference.losses import PreferenceLossConfig
from rl.preference.policy import with_reference
from rl.rollout import Group, generate_and_score
from rl.weight_sync import probe_from, sync_weights


def pairs_from_groups(groups: list[Group], cfg: OnlineConfig) -> PairBatch:
    """Pairs (chosen = higher reward) among each prompt's samples; gaps <= min_reward_gap are skipped."""
    if cfg.pairing not in PAIRINGS:
        raise ValueError(f"online.pairing must be one of {PAIRINGS}, got {cfg.pairing!r}")
    out = PairBatch([], [], [], [], [])
    for g in groups:
        k = len(g.completions)
        if cfg.pairing == "best_vs_worst":
            best = max(range(k), key=lambda i: g.rewards[i])
            worst = min(range(k), key=lambda i: g.rewards[i])
            cand = [(best, worst)]
        else:
            cand = [(i, j) for i in range(k) for j in range(k) if i != j]
        cand = [(i, j) for i, j in cand if g.rewards[i] - g.rewards[j] > cfg.min_reward_gap]
        cand.sort(key=lambda ij: g.rewards[ij[1]] - g.rewards[ij[0]])  # largest gaps first
        if cfg.max_pairs_per_prompt:
            cand = cand[:cfg.max_pairs_per_prompt]
        for i, j in cand:
            ci, cj = g.completions[i], g.completions[j]
            out.prompts.append(list(ci.prompt_ids))
            out.chosen.append(list(ci.token_ids))
            out.rejected.append(list(cj.token_ids))
            out.chosen_rewards.append(g.rewards[i])
            out.rejected_rewards.append(g.rewards[j])
    return out


def prompts_to_draw(cfg: OnlineConfig) -> int:
    return math.ceil(cfg.oversample * cfg.prompts_per_step - 1e-9)


def varied_groups(groups: list[Group]) -> list[Group]:
    """The groups whose samples' rewards are not all equal (flat groups give no pairs), in order:
    the complement of GRPO's dynamic-sampling filter."""
    if not groups:
        return []
    flat = zero_variance_groups(torch.tensor([g.rewards for g in groups])).tolist()
    return [g for g, f in zip(groups, flat) if not f]


def training_groups(groups: list[Group], cfg: OnlineConfig, varied: list[Group] | None = None) -> list[Group]:
    """Every sampled group, or with `oversample` > 1 the first prompts_per_step varied ones."""
    if cfg.oversample <= 1:
        return groups
    return (varied_groups(groups) if varied is None else varied)[:cfg.prompts_per_step]


def sample_pairs(generators, scorer, tokenizer, rows: list[Row], cfg: OnlineConfig, accuracy_reward: str,
                 seed: int) -> tuple[PairBatch, dict[str, float]]:
    """Sample, score and pair. Reward statistics are over every sampled group (the policy's own
    samples); with `oversample` > 1 only the first prompts_per_step varied groups are paired."""
    sampling = SamplingSettings(n=cfg.samples_per_prompt, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_tokens=cfg.max_tokens, seed=seed)
    groups, timings = generate_and_score(generators, scorer, tokenizer, rows, sampling, accuracy_reward)
    varied = varied_groups(groups)
    batch = pairs_from_groups(training_groups(groups, cfg, varied), cfg)
    rewards = [r for g in groups for r in g.rewards]
    acc = [a for g in groups for a in g.accuracy]
    return batch, {"reward_mean": sum(rewards) / max(len(rewards), 1), "accuracy": sum(acc) / max(len(acc), 1),
                   "pairs": float(len(batch)), "groups_varied": len(varied) / max(len(groups), 1),
                   "time/generate": timings["generate"], "time/reward": timings["reward"]}


def mean_and_se(xs: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n))."""
    n = len(xs)
    if not n:
        return 0.0, 0.0
    m = sum(xs) / n
    return m, ((sum((x - m) ** 2 for x in xs) / (n - 1)) ** 0.5 / n ** 0.5) if n > 1 else 0.0


class OnlineRPO:
    """Drives a PolicyGroup and a GeneratorGroup through `iterations` x `steps_per_iteration`."""

    def __init__(self, policy, generators, scorer, tokenizer, loss: PreferenceLossConfig, cfg: OnlineConfig,
                 accuracy_reward: str, sync_cfg, seed: int = 0):
        self.policy, self.generators, self.scorer, self.tokenizer = policy, generators, scorer, tokenizer
        self.loss, self.cfg, self.accuracy_reward, self.sync_cfg, self.seed = loss, cfg, accuracy_reward, sync_cfg, seed
        self.probe: RolloutBatch | None = None
        self.rng = random.Random(seed)  # draws each step's prompts
        # where the run is (iterations done, step, per-prompt evaluations): checkpoint state
        self.progress: dict[str, Any] = {}

    def state_dict(self) -> dict[str, Any]:
        probe = None if self.probe is None else {"sequences": self.probe.sequences,
                                                 "prompt_lens": self.probe.prompt_lens}
        return {"progress": self.progress, "rng": self.rng.getstate(), "probe": probe}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.progress = state["progress"]
        self.rng.setstate(state["rng"])
        probe = state["probe"]
        self.probe = None if probe is None else RolloutBatch(probe["sequences"], probe["prompt_lens"])

    def prompt_rewards(self, rows: list[Row], seed: int) -> list[float]:
        """Per prompt, the mean reward of the policy's own samples (eval_samples per prompt,
        temperature sampling): the prompt is the unit, as samples of one prompt are correlated."""
        sampling = SamplingSettings(n=self.cfg.eval_samples, temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                    max_tokens=self.cfg.max_tokens, seed=seed)
        groups, _ = generate_and_score(self.generators, self.scorer, self.tokenizer, rows, sampling,
                                       self.accuracy_reward)
        return [sum(g.rewards) / max(len(g.rewards), 1) for g in groups]

    def step(self, rows: list[Row], seed: int) -> dict[str, Any]:
        batch, record = sample_pairs(self.generators, self.scorer, self.tokenizer, rows, self.cfg,
                                     self.accuracy_reward, seed)
        if len(batch) < self._world():
            return {**record, "skipped": 1}
        stats = self.policy.preference_step(with_reference(self.policy, batch, self.loss), self.loss)
        record.update({f"pref/{k}": v for k, v in stats.items()})
        if self.probe is None and self.sync_cfg.parity_check:
            seqs, plens = batch.sequences()
            self.probe = probe_from(RolloutBatch(seqs, plens), self.sync_cfg.probe_sequences,
                                    self.generators.settings.max_model_len)
        report = sync_weights(self.policy, self.generators, self.sync_cfg.bucket_mb, self.probe,
                              self.sync_cfg.parity_tolerance)
        record["sync_seconds"] = report.seconds
        if report.max_logprob_diff is not None:
            record["sync_max_logprob_diff"] = report.max_logprob_diff
        return record

    def _world(self) -> int:
        return getattr(self.policy, "world_size", 1)

    def run(self, train_rows: list[Row], eval_rows: list[Row], metrics: MetricsWriter,
            draw: Callable[[random.Random], list[Row]] | None = None, checkpointer: Checkpointer | None = None,
            checkpoint_every: int = 0, resume_from: str | None = None) -> dict[str, Any]:
        """`checkpointer` saves every `checkpoint_every` iterations (not after the last one);
        `resume_from` (a complete checkpoint of this run) continues from it."""
        cfg = self.cfg
        rng = self.rng
        draw = draw or (lambda r: r.sample(train_rows, min(prompts_to_draw(cfg), len(train_rows))))
        if checkpointer is not None:
            checkpointer.register("online_rpo", self)
        if resume_from:
            if checkpointer is None:
                raise ValueError(f"resume_from={resume_from} needs a checkpointer")
            checkpointer.load(resume_from, policy=self.policy)
            p = self.progress
            print(f"[online-rpo] resumed from {resume_from} after iteration {p['iteration']}", flush=True)
        else:
            start = self.prompt_rewards(eval_rows, seed=self.seed + 999)
            first, first_se = mean_and_se(start)
            p = self.progress = {"iteration": 0, "step": 0, "start": start, "last": start,
                                 "by_iteration": [first], "se_by_iteration": [first_se]}
            metrics.log(0, {"eval_reward_mean": first, "eval_reward_se": first_se})
        start, last, by_iteration, se_by_iteration = p["start"], p["last"], p["by_iteration"], p["se_by_iteration"]
        total = cfg.iterations * cfg.steps_per_iteration
        progress = Progress("online-rpo", total)
        step = p["step"]
        for it in range(p["iteration"], cfg.iterations):
            self.policy.reset_preference_reference()
            for i in range(cfg.steps_per_iteration):
                if cfg.reset_reference == "step" and i:
                    self.policy.reset_preference_reference()
                step += 1
                record = {"iteration": it + 1, **self.step(draw(rng), seed=self.seed * 1_000_003 + step * 1000)}
                if step == (it + 1) * cfg.steps_per_iteration:
                    last = self.prompt_rewards(eval_rows, seed=self.seed + 999)
                    mean, se = mean_and_se(last)
                    by_iteration.append(mean)
                    se_by_iteration.append(se)
                    record.update(eval_reward_mean=mean, eval_reward_se=se)
                metrics.log(step, record)
                progress.update(step, reward=record["reward_mean"], pairs=record["pairs"],
                                loss=record.get("pref/loss", float("nan")), acc=record.get("pref/accuracy", float("nan")))
            p.update(iteration=it + 1, step=step, last=last)
            if checkpointer is not None and checkpoint_every and (it + 1) % checkpoint_every == 0 \
                    and it + 1 != cfg.iterations:
                checkpointer.save(step, {"iteration": it + 1}, self.policy, export_hf=True)
        # the same prompts (and sampling seed) at every evaluation: the change is measured per prompt,
        # which removes the prompts' spread in difficulty from its standard error
        gain, gain_se = mean_and_se([b - a for a, b in zip(start, last)])
        return {"reward_mean_first": by_iteration[0], "reward_mean_last": by_iteration[-1],
                "reward_gain": gain, "reward_gain_se": gain_se,
                "reward_mean_by_iteration": by_iteration, "reward_se_by_iteration": se_by_iteration,
                "reward_se_first": se_by_iteration[0], "reward_se_last": se_by_iteration[-1],
                # per eval prompt (same prompts and sampling seed in every run with this seed and
                # online.* prompt settings): lets runs, e.g. iterations=0 evaluations, be compared by prompt
                "eval_prompt_rewards_first": start, "eval_prompt_rewards_last": last,
                "eval_prompts": len(eval_rows), "iterations": cfg.iterations,
                "steps": total}
