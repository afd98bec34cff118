"""Pair readers (reforge, NeMo-Aligner, NeMo-RL, When2Call preference rows), errors that
name file and line, token ids, and the synthetic pair builders scored by the real rewards."""
from __future__ import annotations

import json

import pytest

from core.data.loading import DataError
from core.tokenization import encode_conversation, end_of_turn_ids
from rl.preference.data import PreferencePair, encode_pairs, load_pairs, pair_kind
from rl.preference.synthetic import if_pairs, math_pairs, prompt_rows
from rl.preference.when2call import pairs_from_items, synthetic_items

ROWS = [
    {"prompt": [{"role": "user", "content": "2+2?"}], "chosen": "4", "rejected": "5", "reasoning": "off"},
    {"prompt": "<s>templated prompt", "chosen_response": "good", "rejected_response": "bad", "chosen_reward": 0.8,
     "rejected_reward": 0.3},
    {"context": [{"role": "user", "content": "hi"}],
     "completions": [{"rank": 1, "completion": [{"role": "assistant", "content": "meh"}], "reward": 0.1},
                     {"rank": 0, "completion": [{"role": "assistant", "content": "hello!"}], "reward": 0.9}]},
    {"messages": [{"role": "user", "content": "Weather in Oslo?"}], "tools": ['{"name": "get_weather"}'],
     "chosen_response": "<TOOLCALL>[]</TOOLCALL>", "rejected_response": "It is sunny."},
]


def _write(tmp_path, rows, name="pairs.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_three_layouts_and_default_rewards(tmp_path):
    pairs = load_pairs(_write(tmp_path, ROWS)).rows
    assert [(p.chosen, p.rejected, p.chosen_reward, p.rejected_reward) for p in pairs] == [
        ("4", "5", 1.0, 0.0), ("good", "bad", 0.8, 0.3), ("hello!", "meh", 0.9, 0.1),
        ("<TOOLCALL>[]</TOOLCALL>", "It is sunny.", 1.0, 0.0)]
    assert pairs[0].reasoning == "off" and pairs[1].prompt == "<s>templated prompt"
    assert pairs[3].prompt[0]["content"].startswith('<AVAILABLE_TOOLS>[{"name": "get_weather"}]</AVAILABLE_TOOLS>')


@pytest.mark.parametrize("row,reason", [
    ({"prompt": [{"role": "user", "content": "x"}], "chosen": "a"}, "key 'rejected'"),
    ({"context": [{"role": "user", "content": "x"}], "completions": [{"rank": 0, "completion": "a"}]},
     "exactly two"),
    ({"prompt": "p", "chosen": "a", "rejected": "b", "chosen_reward": "high"}, "key 'chosen_reward'"),
    ({"prompt": [{"role": "robot", "content": "x"}], "chosen": "a", "rejected": "b"}, "key 'prompt[0]'"),
    ({"question": "no pair here"}, "cannot tell the layout"),
])
def test_errors_name_file_line_and_key(tmp_path, row, reason):
    path = _write(tmp_path, [ROWS[0], row])
    with pytest.raises(DataError) as e:
        load_pairs(path)
    assert f"{path}:2:" in str(e.value) and reason in str(e.value)
    report = load_pairs(path, on_error="skip")
    assert len(report.rows) == 1 and report.skipped[0].startswith(f"{path}:2:")


def test_invalid_json_line_is_named(tmp_path):
    path = _write(tmp_path, [ROWS[0], "{not json"])
    with pytest.raises(DataError, match=r"pairs.jsonl:2: invalid JSON"):
        load_pairs(path)


def test_encoding_matches_the_sft_conversation_tokens(tiny_tokenizer):
    pair = load_pairs.__globals__["validate_pair"](ROWS[0], "x")
    batch, too_long = encode_pairs(tiny_tokenizer, [pair], max_len=512)
    conv = encode_conversation(tiny_tokenizer, [{"role": "system", "content": "detailed thinking off"},
                                                *ROWS[0]["prompt"], {"role": "assistant", "content": "4"}])
    assert batch.prompts[0] + batch.chosen[0] == conv.input_ids
    assert len(batch.prompts[0]) == conv.prompt_len and not too_long
    assert batch.chosen[0][-1:] == end_of_turn_ids(tiny_tokenizer)
    seqs, plens = batch.sequences()
    assert len(seqs) == 2 and plens == [conv.prompt_len] * 2  # chosen and rejected rows of one forward
    _, too_long = encode_pairs(tiny_tokenizer, [pair], max_len=5)
    assert too_long == ["x"]


def test_synthetic_pairs_are_scored_right_by_the_reward_functions():
    from rewards.builtin.ifeval import instruction_following_reward
    from rewards.builtin.math import math_reward
    from rewards.builtin.tool import tool_decision_reward
    from rewards.sample import RewardSample

    fns = {"math": math_reward, "if": instruction_following_reward, "tool": tool_decision_reward}
    pairs = math_pairs(24, 3) + if_pairs(40, 4) + pairs_from_items(synthetic_items(30, 5), 6)
    kinds = set()
    for p in pairs:
        spec = p.meta["reward"]
        kinds.add(spec["type"])

        def score(text):
            return fns[spec["type"]](RewardSample(p.id, p.prompt, text, spec, p.reasoning)).score

        assert score(p.chosen) == 1.0, (p.id, p.chosen)
        assert score(p.rejected) < 1.0, (p.id, p.rejected)
    assert kinds == {"math", "if", "tool"}
    rows = prompt_rows(pairs)
    assert len(rows) == len(pairs) and rows[0].reward["type"] == "math"


def test_when2call_items_cover_categories_and_corruptions():
    items = synthetic_items(30, 0)
    assert {i["correct_answer"] for i in items} == {"tool_call", "request_for_info", "cannot_answer"}
    for i in items:
        names = {json.loads(t)["name"] for t in i["tools"]}
        assert (i["target_tool"] in names) == (i["correct_answer"] != "cannot_answer")
    pairs = pairs_from_items(items, 1)
    corrupted = [p for p in pairs if p.id.endswith("-call")]
    assert len(corrupted) == 10 and all(p.rejected.startswith("<TOOLCALL>") for p in corrupted)


def test_math_pairs_cover_every_level_in_both_modes():
    pairs = math_pairs(16, 0)
    got = {(p.id.rsplit("-", 1)[1], p.reasoning) for p in pairs}
    assert got == {(f"L{lvl}", m) for lvl in (1, 2, 3, 4) for m in ("on", "off")}
    assert [pair_kind(p) for p in pairs[:5]] == ["math_on"] * 4 + ["math_off"]


def test_per_kind_heldout_accuracy_by_hand(tiny_tokenizer):
    from rl.preference.policy import heldout_accuracy

    pairs = [PreferencePair(f"p{i}", "prompt", "ab", "cd", meta={"reward": {"type": t}}, reasoning=m)
             for i, (t, m) in enumerate([("math", "on"), ("math", "off"), ("if", None), ("if", None), ("tool", None)])]
    batch, _ = encode_pairs(tiny_tokenizer, pairs, 64)
    assert batch.kinds == ["math_on", "math_off", "if", "if", "tool"]
    n = len(batch.chosen[0])
    assert all(len(x) == n for x in batch.chosen + batch.rejected)  # "ab" and "cd": same token count

    class Fixed:  # summed log-probs: wins on pairs 0, 2; loss on 1, 3; tie on 4
        def sequence_logprobs(self, b):
            return [-1.0, -3.0, -1.0, -3.0, -2.0], [-2.0, -2.0, -2.0, -2.0, -2.0]

    out = heldout_accuracy(Fixed(), batch)
    assert out["pref_accuracy"] == pytest.approx((1 + 0 + 1 + 0 + 0.5) / 5)
    assert (out["pref_accuracy_math_on"], out["pref_accuracy_math_off"], out["pref_accuracy_math"]) == (1.0, 0.0, 0.5)
    assert (out["pref_accuracy_if"], out["pref_accuracy_tool"], out["pairs_if"]) == (0.5, 0.5, 2.0)
    assert out["pref_logp_margin"] == pytest.approx((1 - 1 + 1 - 1 + 0) / 5 / n)
    assert batch.select([4, 0]).kinds == ["tool", "math_on"]
