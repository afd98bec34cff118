"""Seeded calls cut to the engine's prefill budget: same samples, no vLLM-CPU seeded-split crash."""
from __future__ import annotations

from core.chat import with_system_prompt
from core.data.synth import math_rows
from core.engines.base import SamplingSettings
from core.tokenization import encode_prompt


def test_split_generation_equals_one_call(vllm_engine, hf_engine):
    tok = hf_engine.tokenizer
    prompts = [encode_prompt(tok, with_system_prompt(r["messages"], "on"))
               for r in math_rows(12, 4, modes=("on",), with_response=False, split="test")]
    s = SamplingSettings(n=8, temperature=0.6, top_p=0.95, max_tokens=4, seed=3)
    assert sum(map(len, prompts)) * s.n > 4096  # one uncut call would chunk a seeded prefill and crash
    whole = vllm_engine.generate(prompts, s)
    budget = vllm_engine.token_budget
    try:
        vllm_engine.token_budget = 3 * len(max(prompts, key=len))  # splits prompts and n over many calls
        small = vllm_engine.generate(prompts, s)
    finally:
        vllm_engine.token_budget = budget
    assert len(whole) == len(small) == 12 * 8
    # same samples in the same order (cons@k votes over the first k)
    assert [(c.prompt_index, c.token_ids) for c in whole] == [(c.prompt_index, c.token_ids) for c in small]
    assert [c.prompt_index for c in whole] == sorted(c.prompt_index for c in whole)
