"""The tool-use environment: the policy may call tools in `<TOOLCALL>[...]</TOOLCALL>` form;
each call's result (or the error of a malformed, unknown, failing or hanging call) comes
back as a `tool` turn; a turn without a call is the answer and ends the episode.

Rewards: the final answer is scored by the run's Scorer (the reward functions of the
config, e.g. math). Tool-decision rows (`reward.type: tool`, When2Call) are one decision
turn scored by rewards/builtin/tool.py's tool-decision reward: call the right tool / ask a
follow-up / say it cannot; their tools are the row's (`reward.tools`), shown but not run.
"""
from __future__ import annotations

import json
from typing import Any

from core.chat import chat_settings, split_think, with_system_prompt
from core.data.schema import Row
from rewards.sample import RewardResult, RewardSample
from rl.environment import Episode, EnvironmentConfig, EpisodeStart, Feedback
from rl.scoring import Scorer
from rl.tools import ToolCall, ToolResult, ToolRunner, get_tool, parse_turn


def is_decision_row(row: Row) -> bool:
    return row.reward.get("type") == "tool"


def decision_rows(n: int, seed: int, modes: list[str]) -> list[Row]:
    """Synthetic When2Call items (rl/preference/when2call.py: call / ask a follow-up / say it
    cannot, in turn) as RL prompts: the question alone; the episode shows the item's tools and
    its one turn is scored by the tool-decision reward."""
    from core.data.schema import validate_row
    from rl.preference.when2call import reward_spec, synthetic_items

    rows = []
    for i, item in enumerate(synthetic_items(n, seed)):
        rid = f"{item['uuid']}-{modes[i % len(modes)]}"
        rows.append(validate_row({"id": rid, "messages": [{"role": "user", "content": item["question"]}],
                                  "reasoning": modes[i % len(modes)], "reward": reward_spec(item),
                                  "meta": {"source": "when2call-synthetic", "category": item["correct_answer"]}},
                                 rid))
    return rows


def _row_tools(row: Row) -> list[dict[str, Any]]:
    specs = [json.loads(t) if isinstance(t, str) else t for t in row.reward.get("tools", [])]
    return [s.get("function", s) for s in specs]


class ToolEnvironment:
    def __init__(self, tokenizer, cfg: EnvironmentConfig, scorer: Scorer | None = None):
        self.cfg, self.scorer = cfg, scorer
        self.settings = chat_settings(tokenizer)
        self.runner = ToolRunner([get_tool(n) for n in cfg.tools], cfg.tool_timeout_s, cfg.max_observation_chars,
                                 cfg.tool_workers)

    def offered(self, row: Row) -> list[str]:
        """The tools an episode of `row` may call: `meta.tools` (a subset of the configured ones), else all."""
        names = row.meta.get("tools")
        if names is None:
            return list(self.runner.tools)
        unknown = sorted(set(names) - set(self.runner.tools))
        if unknown:
            raise ValueError(f"row {row.id}: key 'meta.tools' names {unknown}, which environment.tools "
                             f"{sorted(self.runner.tools)} does not offer")
        return list(names)

    def start(self, row: Row) -> EpisodeStart:
        if is_decision_row(row):
            tools = _row_tools(row)
        else:
            tools = [self.runner.tools[n].spec() for n in self.offered(row)]
        return EpisodeStart(with_system_prompt(row.prompt_messages, row.reasoning, self.settings), tools)

    def step(self, episodes: list[Episode], turns: list[str]) -> list[Feedback]:
        out: list[Feedback | None] = [None] * len(episodes)
        pending: list[tuple[int, list[ToolCall]]] = []
        for i, (ep, text) in enumerate(zip(episodes, turns)):
            if is_decision_row(ep.row):
                out[i] = Feedback(done=True)
                continue
            _, answer = split_think(text, self.settings) if ep.row.reasoning == "on" else (None, text)
            parsed = parse_turn(answer) if answer is not None else None
            if parsed is None or not parsed.attempted:
                out[i] = Feedback(done=True)  # the answer (or a think block never closed)
            elif parsed.error:
                out[i] = Feedback([{"role": "tool", "name": "", "content": f"error: {parsed.error}"}],
                                  info={"tool_calls": 1.0, "tool_errors": 1.0, "malformed_calls": 1.0})
            else:
                pending.append((i, parsed.calls))
        allowed = {i: {t["name"] for t in episodes[i].tools} for i, _ in pending}
        runnable = [c for i, calls in pending for c in calls if c.name in allowed[i]]
        results = iter(self.runner.run(runnable))
        for i, calls in pending:
            done = [next(results) if c.name in allowed[i] else
                    ToolResult(c.name, f"error: unknown tool {c.name!r}; available: {sorted(allowed[i])}",
                               "unknown_tool") for c in calls]
            out[i] = Feedback([{"role": "tool", "name": r.name, "content": r.content} for r in done],
                              info={"tool_calls": float(len(done)), "tool_errors": float(sum(bool(r.error) for r in done))})
        return [f for f in out if f is not None]

    def score(self, episodes: list[Episode]) -> list[RewardResult]:
        from rewards.builtin.tool import tool_decision_reward

        out: list[RewardResult | None] = [None] * len(episodes)
        scored = [i for i, ep in enumerate(episodes) if not is_decision_row(ep.row)]
        for i, ep in enumerate(episodes):
            if is_decision_row(ep.row):
                first = (ep.policy_turns() or [""])[0]
                out[i] = tool_decision_reward(RewardSample(f"{ep.row.id}#{ep.sample}", ep.row.prompt_messages, first,
                                                           ep.row.reward, ep.row.reasoning))
        if scored:
            if self.scorer is None:
                raise ValueError("ToolEnvironment: rows other than tool-decision rows need a Scorer")
            eps = [episodes[i] for i in scored]
            s = self.scorer.score([e.row for e in eps], [(e.policy_turns() or [""])[-1] for e in eps],
                                  [f"{e.row.id}#{e.sample}" for e in eps])
            for j, i in enumerate(scored):
                out[i] = RewardResult(s.total[j], {k: v[j] for k, v in s.per_function.items()})
        return [r for r in out if r is not None]

    def close(self) -> None:
        self.runner.close()
