"""heldout_accuracy with the rewards' verifiers, and the built-in IFEval-style suite."""
from __future__ import annotations

import json

import pytest

from core.chat import with_system_prompt
from core.data.synth import math_rows
from core.engines.base import SamplingSettings
from core.tokenization import encode_prompt
from evaluation.accuracy import heldout_accuracy
from evaluation.config import EvalConfig
from evaluation.ifeval_suite import ifeval_rows
from evaluation.run import evaluate
from rewards.builtin.extract import final_answer
from rewards.builtin.ifeval import check

GREEDY = SamplingSettings(n=1, temperature=0.0, max_tokens=32)


def test_heldout_accuracy_uses_the_math_verifier(vllm_engine, hf_engine, scorer):
    tok = hf_engine.tokenizer
    rows = math_rows(16, 3, modes=("off",), with_response=False, split="test")
    prompts = [encode_prompt(tok, with_system_prompt(r["messages"], "off")) for r in rows]
    answers = [final_answer(c.text) for c in vllm_engine.generate(prompts, GREEDY)]
    answered = [(r, a) for r, a in zip(rows, answers) if a is not None]
    assert len(answered) >= 4, "the tiny model should emit some numbers in 32 tokens"
    # Gold = the model's own greedy answer for the first half, an impossible one for the rest.
    half = len(answered) // 2
    for i, (r, a) in enumerate(answered):
        r["reward"]["answer"] = a if i < half else "123456789"
    got = heldout_accuracy(vllm_engine, tok, [r for r, _ in answered], "off", GREEDY, scorer)
    assert got["n"] == len(answered)
    assert got["accuracy"] == half / len(answered)
    assert got["reward_failures"] == 0
    levels = {str(r["meta"]["difficulty"]) for r, _ in answered}
    assert set(got["by_difficulty"]) == levels
    # HF generate greedily gives the same completions, hence the same accuracy.
    assert heldout_accuracy(hf_engine, tok, [r for r, _ in answered], "off", GREEDY, scorer) == got


def test_ifeval_suite_scored_by_the_if_reward(tiny_model_dir, vllm_engine, scorer, tmp_path):
    rows = ifeval_rows()
    assert len(rows) == 24 and len({r.id for r in rows}) == 24
    for r in rows:  # every constraint is one the reward knows, with valid arguments
        for c in r.reward["constraints"]:
            check("some text", c)
    run = evaluate(EvalConfig(model=tiny_model_dir, tasks=["ifeval"], modes=["off"], max_tokens=16,
                              run_dir=str(tmp_path / "if")), engine=vllm_engine, scorer=scorer)
    results = json.loads((run / "results.json").read_text())["suites"]["ifeval"]["off"]
    assert results["prompts"] == 24 and results["reward_failures"] == 0
    records = [json.loads(l) for l in (run / "generations.jsonl").read_text().splitlines()]
    by_id = {r.id: r for r in rows}
    fractions = []
    for rec in records:
        cons = by_id[rec["id"]].reward["constraints"]
        text = rec["samples"][0]["text"].strip()
        fractions.append(sum(check(text, c) for c in cons) / len(cons))
    assert results["mean@n"] == pytest.approx(sum(fractions) / len(fractions))
    assert results["pass@k"]["1"] == pytest.approx(sum(f == 1.0 for f in fractions) / len(fractions))
