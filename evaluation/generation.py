"""Generate, score and store every pending job, chunk by chunk, with a progress bar.

Each chunk's records are appended to generations.jsonl only once generated and scored, so
an interrupted run loses at most the chunk in flight and a restart skips every finished
prompt. Sampling uses one seed per request (vLLM derives the n sample seeds from it), so a
prompt's samples do not depend on which chunk or engine it lands in: interrupted and
resumed equals a single run.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from itertools import groupby
from typing import Any

from tqdm import tqdm

from core.chat import with_system_prompt
from core.engines.base import Completion, SamplingSettings
from core.tokenization import encode_prompt
from evaluation.config import EvalConfig
from evaluation.scoring import Scorer
from evaluation.store import GenerationStore
from evaluation.suites import Job
from evaluation.when2call import score_items


def sampling_settings(cfg: EvalConfig, mode: str) -> SamplingSettings:
    s = cfg.sampling(mode)
    return SamplingSettings(n=cfg.samples(mode), temperature=s.temperature, top_p=s.top_p,
                            max_tokens=cfg.max_tokens, seed=cfg.seed)


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def generate_chunk(engine, tokenizer, chunk: list[Job], sampling: SamplingSettings, scorer: Scorer) -> list[dict]:
    """Sample every job of one mode, score each sample with its row's reward, build records."""
    prompts = [encode_prompt(tokenizer, with_system_prompt(j.item.prompt_messages, j.mode)) for j in chunk]
    completions = engine.generate(prompts, sampling)
    per_job: list[list[Any]] = [[] for _ in chunk]
    for c in completions:
        per_job[c.prompt_index].append(c)
    flat = [(j, c) for j, cs in zip(chunk, per_job) for c in cs]
    scores = scorer.score([j.item for j, _ in flat], [c.text for _, c in flat], [j.mode for j, _ in flat],
                          [f"{j.key}#{i}" for j, cs in zip(chunk, per_job) for i in range(len(cs))])
    it = iter(scores)
    records = []
    for job, prompt, cs in zip(chunk, prompts, per_job):
        row = job.item
        samples = []
        for c in cs:
            s = next(it)
            samples.append({"text": c.text, "n_tokens": len(c.token_ids), "finish_reason": c.finish_reason,
                            "score": s.score, "correct": s.correct, "answer": s.answer,
                            "failed": s.failed, "error": s.error})
        records.append({"key": job.key, "suite": job.suite, "kind": "generate", "id": row.id, "mode": job.mode,
                        "source": row.meta.get("source", job.suite), "difficulty": row.meta.get("difficulty"),
                        "reward_type": row.reward["type"], "prompt_tokens": len(prompt), "samples": samples})
    return records


def mcq_chunk(engine, tokenizer, chunk: list[Job]) -> list[dict]:
    mode = chunk[0].mode
    records = score_items(engine, tokenizer, [j.item for j in chunk], mode)
    for job, r in zip(chunk, records):
        r.update(key=job.key, suite=job.suite, kind="mcq")
    return records


def run_jobs(engine, tokenizer, all_jobs: list[Job], store: GenerationStore, cfg: EvalConfig,
             scorer: Scorer) -> int:
    """Do every job the store does not hold yet; returns how many were done now."""
    pending = [j for j in all_jobs if not store.done(j.key)]
    bar = tqdm(total=len(all_jobs), initial=len(all_jobs) - len(pending), desc="evaluate", unit="prompt",
               file=sys.stderr, dynamic_ncols=True)
    try:
        for (kind, mode), group in groupby(pending, key=lambda j: (j.kind, j.mode)):
            for chunk in _chunks(list(group), cfg.chunk_size):
                if kind == "mcq":
                    records = mcq_chunk(engine, tokenizer, chunk)
                else:
                    records = generate_chunk(engine, tokenizer, chunk, sampling_settings(cfg, mode), scorer)
                store.append(records)
                bar.set_postfix_str(f"{chunk[-1].suite}/{mode}")
                bar.update(len(chunk))
    finally:
        bar.close()
    return len(pending)
