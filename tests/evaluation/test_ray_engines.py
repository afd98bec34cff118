"""num_engines > 1: vLLM engines in Ray actors (core.engines.group) give the samples one
in-process engine gives."""
from __future__ import annotations

import pytest

from core.chat import with_system_prompt
from core.data.synth import math_rows
from core.engines.base import SamplingSettings
from core.tokenization import encode_prompt
from evaluation.config import EvalConfig
from evaluation.engines import make_engine


@pytest.mark.slow
def test_ray_engines_match_in_process(tiny_model_dir, vllm_engine, hf_engine):
    import ray

    tok = hf_engine.tokenizer
    prompts = [encode_prompt(tok, with_system_prompt(r["messages"], "on"))
               for r in math_rows(5, 6, modes=("on",), with_response=False, split="test")]
    s = SamplingSettings(n=2, temperature=0.6, top_p=0.95, max_tokens=6, seed=1)
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        engines = make_engine(EvalConfig(model=tiny_model_dir, engine="vllm", max_model_len=512, num_engines=2))
        assert engines.kind == "vllm" and len(engines.workers) == 2
        got = engines.generate(prompts, s)
        lps = engines.prompt_logprobs(prompts[:3], [len(p) - 2 for p in prompts[:3]])
        engines.shutdown()
    finally:
        ray.shutdown()
    want = vllm_engine.generate(prompts, s)
    assert [(c.prompt_index, c.token_ids) for c in got] == [(c.prompt_index, c.token_ids) for c in want]
    ref = vllm_engine.prompt_logprobs(prompts[:3], [len(p) - 2 for p in prompts[:3]])
    assert [len(x) for x in lps] == [2, 2, 2]
    assert lps == [pytest.approx(r, abs=1e-4) for r in ref]
