"""Tool-use SFT traces (sft/tool_traces.py) are the tool environment's episodes: same tools
block, same tool answers (the real calculator through ToolEnvironment.step), same ids from
the template (TurnRenderer), loss on the assistant turns only."""
from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from core.data.schema import validate_row
from rewards.builtin.math_steps import math_steps_reward
from rewards.sample import RewardSample
from rl.environment import EnvironmentConfig, Episode
from rl.tool_environment import ToolEnvironment
from rl.turns import TurnRenderer
from sft.config import SFTConfig
from sft.packing import encode_rows
from sft.tool_traces import step_expression, tool_math_rows


@pytest.fixture(scope="module")
def env_and_tok(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    env = ToolEnvironment(tok, EnvironmentConfig(name="tools", tools=["calculator"]))
    yield env, tok
    env.close()


def _prompt_row(trace):
    """The RL prompt row of the trace's problem: the question alone (the environment adds the tools)."""
    question = trace["messages"][0]["content"].split("\n\n", 1)[1]
    return validate_row({"id": trace["id"], "messages": [{"role": "user", "content": question}],
                         "reasoning": trace["reasoning"], "reward": trace["reward"]}, trace["id"])


def _spans(mask):
    out, start = [], None
    for i, m in enumerate(mask + [0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    return out


@pytest.mark.parametrize("mode,shown", [("on", "specs"), ("off", "specs"), ("on", "signatures")])
def test_traces_render_as_the_environment_plays_them(env_and_tok, mode, shown):
    env, tok = env_and_tok
    renderer = TurnRenderer(tok, shown)
    traces = tool_math_rows(8, 3, (mode,), tools_shown=shown)
    head = {"specs": '<AVAILABLE_TOOLS>[{"name": "calculator", "description": ',
            "signatures": "<AVAILABLE_TOOLS>calculator(expression)</AVAILABLE_TOOLS>\n\n"}[shown]
    assert all(t["messages"][0]["content"].startswith(head) for t in traces)
    assert sorted({t["meta"]["difficulty"] for t in traces}) == [1, 2, 3, 4]
    for trace in traces:
        row = _prompt_row(trace)
        start = env.start(row)
        assert [t["name"] for t in start.tools] == ["calculator"]
        conversation = renderer.conversation(start.messages, start.tools)
        enc = encode_rows(tok, [trace])[0]
        prompt = renderer.prompt_ids(conversation, start.tools)
        assert enc.input_ids[:len(prompt)] == prompt and enc.prompt_len == len(prompt)

        turns = trace["messages"][1:]
        assistant = [m for m in turns if m["role"] == "assistant"]
        tool_turns = [m for m in turns if m["role"] == "tool"]
        assert len(tool_turns) == len(assistant) - 1 == trace["meta"]["difficulty"]
        spans = _spans(enc.loss_mask)
        assert len(spans) == len(assistant)  # loss on the assistant turns, nothing else
        ep = Episode(row, 0, [dict(m) for m in conversation], start.tools, prompt)
        for k, turn in enumerate(assistant):
            a, b = spans[k]
            assert tok.decode(enc.input_ids[a:b], skip_special_tokens=True) == turn["content"]
            ep.messages.append(dict(turn))
            if k == len(assistant) - 1:
                assert b == len(enc.input_ids)
                break
            # The environment answers the call with the real calculator, and the answer's ids
            # (TurnRenderer) are exactly the unmasked ids between the two assistant turns.
            [feedback] = env.step([ep], [turn["content"]])
            assert not feedback.done and feedback.info["tool_calls"] == 1.0 and feedback.info["tool_errors"] == 0.0
            assert feedback.messages == [tool_turns[k]]
            answer = renderer.answer_ids(ep.messages, feedback.messages, start.tools, enc.input_ids[b - 1])
            assert enc.input_ids[b:spans[k + 1][0]] == answer
            ep.messages += feedback.messages
        # The final turn boxes the calculator's last answer: it scores 1 under the demo's reward.
        assert assistant[-1]["content"].endswith(f"\\boxed{{{tool_turns[-1]['content']}}}.")
        sample = RewardSample(row.id, row.prompt_messages, assistant[-1]["content"], row.reward, mode)
        assert math_steps_reward(sample).score == 1.0


def test_step_expressions_and_plain_default():
    assert step_expression("5 + 7 = 12") == "5 + 7"
    with pytest.raises(ValueError, match="not an equation"):
        step_expression("5 + 7")
    assert SFTConfig().data.synthetic_tool_math == 0  # the plain tiny policy's data is unchanged
