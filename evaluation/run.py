"""One evaluation run, end to end: suites -> jobs -> generate + score (resumable) -> results.

The run directory holds config.yaml, protocol.json (what decides the numbers; a resumed
run must match it), generations.jsonl (the resume log), results.json, report.md with its
plots, and summary.json. Everything a user can get wrong (config, data files) fails before
a model is loaded.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.paths import runs_root
from core.run_dir import RunDir
from evaluation.compare import write_compare
from evaluation.config import EvalConfig
from evaluation.generation import run_jobs
from evaluation.report import write_report
from evaluation.results import aggregate, headline
from evaluation.scoring import Scorer
from evaluation.store import GenerationStore
from evaluation.suites import jobs, load_suite


class ProtocolMismatch(ValueError):
    """A run directory is being resumed with settings that would change its numbers."""


def _open_run(cfg: EvalConfig) -> RunDir:
    run = RunDir.create(runs_root(), cfg.name, explicit=cfg.run_dir or None)
    path = run.path / "protocol.json"
    protocol = cfg.protocol()
    if path.exists():
        saved = json.loads(path.read_text())
        if saved != protocol:
            diff = sorted(k for k in protocol if saved.get(k) != protocol[k])
            raise ProtocolMismatch(f"{run.path}: cannot resume, settings differ in {diff}; "
                                   f"use a new run_dir or the original settings")
    else:
        path.write_text(json.dumps(protocol, indent=2))
    run.save_config(cfg)
    return run


def evaluate(cfg: EvalConfig, engine=None, scorer: Scorer | None = None) -> Path:
    """Run (or resume) an evaluation; `engine` may be a loaded generator for `cfg.model`."""
    cfg.validate()
    suites = [load_suite(t, cfg.num_math, cfg.num_code, cfg.synth_seed, cfg.on_error, cfg.respect_row_reasoning)
              for t in cfg.tasks]
    all_jobs = jobs(suites, cfg.modes)
    run = _open_run(cfg)
    store = GenerationStore(run.path / "generations.jsonl")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    if scorer is None:
        from evaluation.scoring import RewardScorer

        scorer = RewardScorer(cfg.reward_timeout_s)
    own_engine = engine is None and any(not store.done(j.key) for j in all_jobs)
    if own_engine:
        from evaluation.engines import make_engine

        engine = make_engine(cfg)
    try:
        run_jobs(engine, tokenizer, all_jobs, store, cfg, scorer)
    finally:
        if own_engine and hasattr(engine, "shutdown"):
            engine.shutdown()
    records = [store.records[j.key] for j in all_jobs]
    results = aggregate(records, cfg, {s.name: s.skipped for s in suites if s.skipped})
    (run.path / "results.json").write_text(json.dumps(results, indent=2))
    write_report(run.path, results, records)
    run.write_summary(headline(results))
    run.finish()
    return run.path


def compare_runs(cfg: EvalConfig) -> Path:
    cfg.validate()
    run = RunDir.create(runs_root(), "compare", explicit=cfg.run_dir or None)
    write_compare(run.path, *cfg.compare)
    run.finish()
    return run.path
