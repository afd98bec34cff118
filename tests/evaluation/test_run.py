"""A real evaluation of the tiny model: outputs, resume after an interruption, compare, CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.data.synth import math_rows
from evaluation.config import EvalConfig
from evaluation.metrics import pass_at_k
from evaluation.run import ProtocolMismatch, compare_runs, evaluate
from evaluation.store import GenerationStore

ROOT = Path(__file__).resolve().parents[2]
W2C = Path(__file__).parent / "data" / "when2call_mini.jsonl"


class InterruptAt:
    """The real engine, interrupted (as by Ctrl-C) when its `call`-th generate call starts."""

    def __init__(self, engine, call: int):
        self.engine, self.call, self.calls = engine, call, 0

    def generate(self, prompts, sampling):
        self.calls += 1
        if self.calls == self.call:
            raise KeyboardInterrupt
        return self.engine.generate(prompts, sampling)

    def prompt_logprobs(self, sequences, prompt_lens):
        return self.engine.prompt_logprobs(sequences, prompt_lens)


def config(model: str, run_dir: Path, **kw) -> EvalConfig:
    base = dict(model=model, tasks=["math", "code", f"when2call:{W2C}"], modes=["on", "off"], n=4, ks=[1, 2, 4],
                num_math=6, num_code=3, max_tokens=24, chunk_size=3, max_model_len=512, run_dir=str(run_dir))
    base.update(kw)
    return EvalConfig(**base)


@pytest.fixture(scope="module")
def single_run(tiny_model_dir, vllm_engine, scorer, tmp_path_factory):
    run = tmp_path_factory.mktemp("eval") / "single"
    return evaluate(config(tiny_model_dir, run), engine=vllm_engine, scorer=scorer)


def test_single_run_writes_all_outputs(single_run, capsys):
    files = {p.name for p in single_run.iterdir()}
    assert {"results.json", "generations.jsonl", "report.md", "summary.json", "config.yaml", "protocol.json",
            "accuracy_by_mode.png", "pass_at_k.png", "response_lengths.png"} <= files
    records = [json.loads(l) for l in (single_run / "generations.jsonl").read_text().splitlines()]
    assert len(records) == (6 + 3 + 8) * 2  # every prompt once per mode
    results = json.loads((single_run / "results.json").read_text())
    assert set(results["suites"]) == {"math", "code", "when2call"}
    math_on, math_off = results["suites"]["math"]["on"], results["suites"]["math"]["off"]
    assert (math_on["prompts"], math_on["samples"]) == (6, 24)  # n=4 sampled
    assert (math_off["prompts"], math_off["samples"]) == (6, 6)  # greedy: one sample
    assert set(math_on["pass@k"]) == {"1", "2", "4"} and set(math_off["pass@k"]) == {"1"}
    assert set(math_on["by_difficulty"]) == {"1", "2", "3", "4"}
    assert set(math_on["by_source"]) == {"synthetic-math"}
    # the figures are what the stored samples say
    for suite in ("math", "code"):
        for mode in ("on", "off"):
            recs = [r for r in records if r["suite"] == suite and r["mode"] == mode]
            m = results["suites"][suite][mode]
            ns = {len(r["samples"]) for r in recs}
            assert len(ns) == 1
            n = ns.pop()
            for k in m["pass@k"]:
                expect = sum(pass_at_k(n, sum(s["correct"] for s in r["samples"]), int(k)) for r in recs) / len(recs)
                assert m["pass@k"][k] == pytest.approx(expect)
            tokens = [s["n_tokens"] for r in recs for s in r["samples"]]
            assert m["mean_response_tokens"] == pytest.approx(sum(tokens) / len(tokens))
            assert 1 <= m["mean_response_tokens"] <= 24
    w2c = results["suites"]["when2call"]["on"]
    assert w2c["n"] == 8 and w2c["tool_hallucination_n"] == 2
    assert sum(sum(row.values()) for row in w2c["confusion"].values()) == 8
    assert results["reward_failures"]["total"] == 0
    report = (single_run / "report.md").read_text()
    assert "| math | on | 6 | 4 |" in report and "![pass@k](pass_at_k.png)" in report
    summary = json.loads((single_run / "summary.json").read_text())
    assert summary["math/on/pass@4"] == math_on["pass@k"]["4"]


def test_interrupted_then_resumed_equals_single_run(single_run, tiny_model_dir, vllm_engine, scorer, tmp_path):
    run = tmp_path / "resumed"
    cfg = config(tiny_model_dir, run)
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg, engine=InterruptAt(vllm_engine, 2), scorer=scorer)
    done = GenerationStore(run / "generations.jsonl").records
    assert len(done) == 3  # the first chunk of three prompts was stored before the interruption
    with (run / "generations.jsonl").open("a") as f:
        f.write('{"key": "math/torn')  # a write cut short by the kill
    resumed = InterruptAt(vllm_engine, 0)
    evaluate(cfg, engine=resumed, scorer=scorer)
    assert resumed.calls == 6 - 1  # math: 2 chunks per mode, code: 1 per mode; 1 was done
    assert (run / "results.json").read_text() == (single_run / "results.json").read_text()
    lines = (run / "generations.jsonl").read_text().splitlines()
    assert len(lines) == 34 and all(json.loads(l) for l in lines)
    with pytest.raises(ProtocolMismatch, match="'n'"):
        evaluate(config(tiny_model_dir, run, n=2), engine=vllm_engine, scorer=scorer)


def test_compare_runs_side_by_side(single_run, tiny_model_dir, vllm_engine, scorer, tmp_path, capsys):
    other = evaluate(config(tiny_model_dir, tmp_path / "short", max_tokens=8, tasks=["math"], modes=["off"]),
                     engine=vllm_engine, scorer=scorer)
    out = compare_runs(EvalConfig(compare=[str(single_run), str(other)], run_dir=str(tmp_path / "cmp")))
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    rows = json.loads((out / "compare.json").read_text())["rows"]
    tok = next(r for r in rows if r["suite"] == "math" and r["mode"] == "off" and r["metric"] == "mean_response_tokens")
    assert tok["b"] <= 8
    assert tok["delta"] == pytest.approx(tok["b"] - tok["a"])
    only_a = next(r for r in rows if r["suite"] == "code" and r["mode"] == "on" and r["metric"] == "pass@1")
    assert only_a["b"] is None and only_a["delta"] is None
    assert "| math | off | mean_response_tokens |" in (out / "report.md").read_text()
    # the same through `reforge eval compare A B`
    from core.cli import main

    assert main(["eval", "compare", str(single_run), str(other), f"run_dir={tmp_path / 'cmp2'}"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "cmp2")
    assert json.loads((tmp_path / "cmp2" / "compare.json").read_text())["rows"] == rows


def test_recipe_command_line(tiny_model_dir, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in math_rows(3, 5, modes=("off",), with_response=False))
                    + "{not json}\n")
    run = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "evaluate.py"), f"model={tiny_model_dir}", f"tasks=[{rows}]",
         "modes=[off]", "engine=hf", "max_tokens=8", f"run_dir={run}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == str(run)
    results = json.loads((run / "results.json").read_text())
    assert results["suites"]["rows"]["off"]["prompts"] == 3
    assert results["skipped_rows"] == {"rows": 1}
    bad = subprocess.run([sys.executable, str(ROOT / "recipes" / "evaluate.py"), f"model={tiny_model_dir}",
                          "tasks=[nonexistent.jsonl]"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and "nonexistent.jsonl" in bad.stderr
