"""Multi-turn rollouts: every episode of every group advances together, one turn at a time.

Each turn is ONE `generate()` call for all live episodes (the engines batch across
episodes and groups), then one batched `Environment.step` (tools of all episodes run
concurrently). The first turn asks for `samples_per_row` samples of each row's prompt;
later turns continue each episode from its own ids. An episode ends when the environment
says done, at `max_turns`, or when it runs out of tokens (a turn cut at
`max_tokens_per_turn`, the episode at `max_episode_tokens` or the engine's
`max_model_len`): that is finish "length", which overlong masking treats as truncated.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch

from core.data.schema import Row
from core.engines.base import Completion, SamplingSettings
from rl.advantages import group_advantages, zero_variance_groups
from rl.batch import RolloutBatch
from rl.environment import Environment, EnvironmentConfig, Episode
from rl.turns import TurnRenderer


@dataclass
class EpisodeGroup:
    row: Row
    episodes: list[Episode]
    accuracy: list[float] = field(default_factory=list)  # per episode: the accuracy reward's score (or reward > 0)

    @property
    def rewards(self) -> list[float]:
        return [e.reward for e in self.episodes]


@dataclass
class MultiTurnRollout:
    """The multi-turn counterpart of rl.rollout.Rollout (same metrics/timings/to_batch use)."""

    groups: list[EpisodeGroup]
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_batch(self, algo, overlong_masking: bool) -> RolloutBatch:
        """Loss only on policy tokens; a truncated episode carries none under overlong masking."""
        rewards = torch.tensor([g.rewards for g in self.groups], dtype=torch.float32)
        adv = group_advantages(rewards, algo.advantage).flatten().tolist()
        eps = [e for g in self.groups for e in g.episodes]
        masks = [[0] * len(e.loss_mask) if (overlong_masking and e.truncated) else list(e.loss_mask) for e in eps]
        return RolloutBatch([e.ids for e in eps], [len(e.prompt_ids) for e in eps], adv, masks,
                            [list(e.logprobs) for e in eps])


def _policy_turn(ep: Episode, c: Completion, budget: int, cfg: EnvironmentConfig) -> None:
    """Append the generated ids (cut to the episode's budget) and the turn as a message."""
    ids, lps = list(c.token_ids), list(c.logprobs)
    cut = len(ids) > budget
    ids, lps = ids[:budget], lps[:budget]
    ep.add("policy", ids, lps)
    ep.messages.append({"role": "assistant", "content": c.text})
    ep.turns += 1
    if cut or c.finish_reason == "length":
        ep.finish = "length"


def run_episodes(generator, env: Environment, tokenizer, rows: list[Row], samples_per_row: int,
                 sampling: SamplingSettings, cfg: EnvironmentConfig, max_model_len: int,
                 renderer: TurnRenderer | None = None,
                 accuracy_reward: str = "") -> tuple[list[EpisodeGroup], dict[str, float]]:
    """Play `samples_per_row` episodes of every row to the end and score them."""
    renderer = renderer or TurnRenderer(tokenizer, cfg.tools_shown)
    timings = {"generate": 0.0, "environment": 0.0, "reward": 0.0, "generate_calls": 0.0}
    groups: list[EpisodeGroup] = []
    for row in rows:
        start = env.start(row)
        messages = renderer.conversation(start.messages, start.tools)
        prompt = renderer.prompt_ids(messages, start.tools)
        groups.append(EpisodeGroup(row, [Episode(row, g, [dict(m) for m in messages], start.tools, list(prompt))
                                         for g in range(samples_per_row)]))
    episodes = [e for g in groups for e in g.episodes]
    for ep in episodes:
        if len(ep.prompt_ids) >= max_model_len:
            ep.finish = "length"
    for turn in range(cfg.max_turns):
        live = [e for e in episodes if not e.done]
        if not live:
            break
        turn_sampling = replace(sampling, max_tokens=cfg.max_tokens_per_turn,
                                seed=None if sampling.seed is None else sampling.seed + 7919 * turn)
        t0 = time.perf_counter()
        if turn == 0:  # every episode of a group shares the prompt: n samples of each row
            starting = [g for g in groups if not g.episodes[0].done]
            reps = samples_per_row if turn_sampling.greedy else 1  # vLLM takes greedy requests only with n=1
            comps = generator.generate([g.episodes[0].prompt_ids for g in starting for _ in range(reps)],
                                       replace(turn_sampling, n=samples_per_row // reps))
            by_row: dict[int, list[Completion]] = {}
            for c in comps:
                by_row.setdefault(c.prompt_index // reps, []).append(c)
            pairs = [(e, c) for k, g in enumerate(starting) for e, c in zip(g.episodes, by_row[k])]
        else:
            comps = generator.generate([e.ids for e in live], replace(turn_sampling, n=1))
            pairs = list(zip(live, comps))
        timings["generate"] += time.perf_counter() - t0
        timings["generate_calls"] += 1
        for ep, c in pairs:
            budget = min(cfg.max_episode_tokens - len(ep.response_ids), max_model_len - len(ep.ids))
            _policy_turn(ep, c, max(budget, 0), cfg)
        answering = [e for e, _ in pairs if not e.done]
        t1 = time.perf_counter()
        feedback = env.step(answering, [e.messages[-1]["content"] for e in answering]) if answering else []
        for ep, fb in zip(answering, feedback):
            for k, v in fb.info.items():
                ep.counters[k] = ep.counters.get(k, 0.0) + float(v)
            if fb.done:
                ep.finish = "done"
                continue
            if ep.turns >= cfg.max_turns:
                ep.finish = "turn_limit"
                continue
            last = ep.response_ids[-1] if ep.response_ids else None
            ids = renderer.answer_ids(ep.messages, fb.messages, ep.tools, last)
            ep.messages += [dict(m) for m in fb.messages]
            room = min(cfg.max_episode_tokens - len(ep.response_ids), max_model_len - len(ep.ids))
            if len(ids) >= room:  # no room left for the answer and a next turn
                ep.finish = "length"
                continue
            ep.add("environment", ids)
        timings["environment"] += time.perf_counter() - t1
    for ep in episodes:
        if not ep.done:
            ep.finish = "turn_limit"
    t2 = time.perf_counter()
    for ep, res in zip(episodes, env.score(episodes)):
        ep.reward, ep.reward_info = float(res.score), dict(res.info)
    for g in groups:
        g.accuracy = [float(e.reward_info.get(accuracy_reward, e.reward > 0)) for e in g.episodes]
    timings["reward"] = time.perf_counter() - t2
    return groups, timings


def episode_metrics(groups: list[EpisodeGroup]) -> dict[str, float]:
    eps = [e for g in groups for e in g.episodes]
    n = max(len(eps), 1)
    out = {
        "reward_mean": sum(e.reward for e in eps) / n,
        "turns_mean": sum(e.turns for e in eps) / n,
        "policy_tokens_mean": sum(sum(e.loss_mask) for e in eps) / n,
        "response_tokens_mean": sum(len(e.response_ids) for e in eps) / n,
        "truncated_fraction": sum(e.truncated for e in eps) / n,
        "turn_limit_fraction": sum(e.finish == "turn_limit" for e in eps) / n,
        "tool_call_rate": sum(e.counters.get("tool_calls", 0.0) > 0 for e in eps) / n,
        "tool_calls_mean": sum(e.counters.get("tool_calls", 0.0) for e in eps) / n,
        "tool_error_rate": sum(e.counters.get("tool_errors", 0.0) for e in eps)
        / max(sum(e.counters.get("tool_calls", 0.0) for e in eps), 1.0),
    }
    decisions = [e for e in eps if e.row.reward.get("type") == "tool"]  # When2Call rows (rl.tool_environment)
    if decisions:
        out["decision_reward_mean"] = sum(e.reward for e in decisions) / len(decisions)
    return out


def collect_multiturn_rollout(generator, env: Environment, tokenizer, draw_rows, rollout_cfg, env_cfg: EnvironmentConfig,
                              max_model_len: int, accuracy_reward: str, seed: int,
                              renderer: TurnRenderer | None = None) -> MultiTurnRollout:
    """rl.rollout.collect_rollout for episodes: draw rows, play, drop zero-variance groups
    and refill (dynamic sampling) up to `prompts_per_step` informative groups."""
    renderer = renderer or TurnRenderer(tokenizer, env_cfg.tools_shown)
    kept: list[EpisodeGroup] = []
    every: list[EpisodeGroup] = []
    metrics = {"groups_sampled": 0.0, "groups_filtered": 0.0, "refill_rounds": 0.0}
    timings: dict[str, float] = {}
    for round_ in range(1 + (rollout_cfg.max_refill_rounds if rollout_cfg.dynamic_sampling else 0)):
        sampling = SamplingSettings(temperature=rollout_cfg.temperature, top_p=rollout_cfg.top_p,
                                    seed=seed + 100 * round_)
        groups, t = run_episodes(generator, env, tokenizer, draw_rows(), rollout_cfg.samples_per_prompt, sampling,
                                 env_cfg, max_model_len, renderer, accuracy_reward)
        for k, v in t.items():
            timings[k] = timings.get(k, 0.0) + v
        every += groups
        metrics["groups_sampled"] += len(groups)
        if rollout_cfg.dynamic_sampling:
            flat = zero_variance_groups(torch.tensor([g.rewards for g in groups])).tolist()
            metrics["groups_filtered"] += float(sum(flat))
            groups = [g for g, f in zip(groups, flat) if not f]
        kept += groups
        if len(kept) >= rollout_cfg.prompts_per_step or not rollout_cfg.dynamic_sampling:
            break
        metrics["refill_rounds"] += 1
    kept = kept[:rollout_cfg.prompts_per_step]
    metrics.update(episode_metrics(every))
    metrics["accuracy"] = sum(a for g in every for a in g.accuracy) / max(sum(len(g.accuracy) for g in every), 1)
    metrics["groups_kept"] = float(len(kept))
    return MultiTurnRollout(kept, metrics, timings)
