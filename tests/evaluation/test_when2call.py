"""When2Call MCQ: loading, metrics on a hand-built file, real log-likelihood scoring."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.data.loading import DataError
from evaluation.when2call import (CATEGORIES, choice_requests, choices, load_when2call, macro_f1,
                                  mcq_metrics, predictions, score_items)

DATA = Path(__file__).parent / "data" / "when2call_mini.jsonl"


def records_for(items, raw_picks, overrides=None):
    """Records whose raw argmax is `raw_picks[i]`; `overrides` set exact (logprobs, bytes)."""
    recs = []
    for i, (item, pick) in enumerate(zip(items, raw_picks)):
        lps = [-1.0 if c == pick else -5.0 for c in CATEGORIES]
        nbytes = [10, 10, 10, 10]
        if overrides and i in overrides:
            lps, nbytes = overrides[i]
        recs.append({"id": item.id, "mode": "off", "gold": item.correct_answer, "n_tools": len(item.tools),
                     "source": item.source, "choice_logprobs": lps, "choice_bytes": nbytes})
    return recs


def test_load_parses_tools_and_renders_tool_call():
    items = load_when2call(DATA)
    assert [i.correct_answer for i in items] == ["tool_call", "request_for_info", "tool_call", "cannot_answer",
                                                  "request_for_info", "cannot_answer", "cannot_answer", "tool_call"]
    assert items[0].tools[0]["name"] == "get_weather"
    assert [len(i.tools) for i in items] == [1, 1, 2, 0, 1, 0, 1, 1]
    c = choices(items[0])
    assert c[1] == '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]</TOOLCALL>'
    assert c[0] == "It is sunny in Paris." and c[3] == "I cannot check the weather with my tools."


def test_malformed_row_is_named_by_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = DATA.read_text().splitlines()
    row = json.loads(lines[1])
    row["correct_answer"] = "maybe"
    bad.write_text("\n".join([lines[0], json.dumps(row)]) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: key 'correct_answer'"):
        load_when2call(bad)
    assert len(load_when2call(bad, on_error="skip")) == 1


def test_metrics_on_hand_built_file():
    items = load_when2call(DATA)
    raw = ["tool_call", "tool_call", "tool_call", "tool_call", "request_for_info", "cannot_answer", "direct",
           "tool_call"]
    # Item 2: the tool call wins on total log-likelihood, the longer request-for-info per byte.
    recs = records_for(items, raw, {1: ([-20.0, -10.0, -12.0, -30.0], [10, 50, 100, 10])})
    assert predictions(recs[1]) == ("tool_call", "request_for_info")
    m = mcq_metrics(recs)
    assert m["n"] == 8
    assert m["acc"] == pytest.approx(5 / 8)
    assert m["acc_norm"] == pytest.approx(6 / 8)
    # per class F1: tool_call 6/8, request_for_info 2/3, cannot_answer 1/2, direct 0
    assert m["macro_f1"] == pytest.approx((0.75 + 2 / 3 + 0.5 + 0.0) / 4)
    # w2c-4 and w2c-6 are cannot_answer with no tools; w2c-4 was answered with a tool call
    assert m["tool_hallucination_n"] == 2
    assert m["tool_hallucination_rate"] == pytest.approx(0.5)
    assert m["confusion"]["cannot_answer"] == {"direct": 1, "tool_call": 1, "request_for_info": 0,
                                               "cannot_answer": 1}


def test_macro_f1_perfect_and_disjoint():
    assert macro_f1(["a", "b"], ["a", "b"]) == 1.0
    assert macro_f1(["a", "a"], ["b", "b"]) == 0.0


def test_real_scoring_matches_between_engines(tiny_model_dir, vllm_engine, hf_engine):
    items = load_when2call(DATA)
    tok = hf_engine.tokenizer
    v = score_items(vllm_engine, tok, items, "on")
    h = score_items(hf_engine, tok, items, "on")
    for rv, rh in zip(v, h):
        assert rv["choice_logprobs"] == pytest.approx(rh["choice_logprobs"], abs=2e-3)
        assert all(lp < 0 for lp in rv["choice_logprobs"])
    m = mcq_metrics(v)
    assert m["n"] == 8 and 0.0 <= m["acc"] <= 1.0
    # A choice's score is the log-likelihood of exactly its own tokens after the context.
    seqs, lens = choice_requests(tok, items[0], "on")
    assert tok.decode(seqs[1][lens[1]:]) == choices(items[0])[1]
    assert "<think></think>" in tok.decode(seqs[0][:lens[0]]).replace(" ", "")
