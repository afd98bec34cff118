"""Rollout throughput: vLLM-CPU vs the HF `generate` fallback on the same batch.

    python benchmarks/bench_rollout.py [--presets small,tiny] [--prompts 8] [--n 8]
                                       [--max-tokens 128] [--repeats 2] [--max-load 3 --max-wait 3600]

Both engines get the same prompts (synthetic math, chat-formatted as the GRPO loop does),
`n` samples per prompt, temperature 1, top-p 1, the same `max_tokens`, and both cores. Each
engine lives in its own spawned process (vLLM binds its OpenMP threads to the cores at
start-up, which would otherwise leak into the HF measurement); the two processes take turns,
HF then vLLM, `--repeats` times, so drifting load on this shared machine hits both alike.
Tokens/s counts generated tokens only (each completion's length, its eos included) over
wall time; the median repeat is reported, with tokens per CPU-second as a load-robust
second figure. The policies are random-init models whose eos row is calibrated so samples
stop at varied lengths (benchmarks/common.py `bench_policy`). Writes
benchmarks/results/rollout_vllm_vs_hf.json.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import bench_policy, length_stats, load1, machine_facts, wait_for_quiet  # noqa: E402

MEAN_TOKENS = {"tiny": 32, "small": 64}  # eos-calibrated policies: target mean completion length


def _engine_worker(kind: str, model_dir: str, hf_batch_size: int, conn) -> None:
    """Runs in a spawned process: build one engine, then answer generate requests."""
    from core.engines.base import SamplingSettings
    from core.engines.factory import EngineSettings, make_engine

    engine = make_engine(model_dir, EngineSettings(engine=kind, max_model_len=1024, kv_cache_gib=1.0,
                                                   hf_batch_size=hf_batch_size))
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            break
        prompts, kw = msg
        wall, cpu = time.perf_counter(), time.process_time()
        out = engine.generate(prompts, SamplingSettings(**kw))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        conn.send({"wall_s": wall, "cpu_s": cpu, "lengths": [len(c.token_ids) for c in out],
                   "stopped": sum(c.finish_reason == "stop" for c in out)})
    if hasattr(engine, "shutdown"):
        engine.shutdown()


class EngineProcess:
    def __init__(self, kind: str, model_dir: str, hf_batch_size: int):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_engine_worker, args=(kind, model_dir, hf_batch_size, child), daemon=True)
        start = time.perf_counter()
        self.proc.start()
        assert self.conn.recv() == "ready"
        self.startup_s = time.perf_counter() - start

    def generate(self, prompts: list[list[int]], **sampling) -> dict:
        self.conn.send((prompts, sampling))
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(timeout=60)


def bench_preset(preset: str, args) -> dict:
    from transformers import AutoTokenizer

    from benchmarks.common import math_prompts
    from core.tiny import count_parameters

    model_dir = str(bench_policy(preset, args.policy, MEAN_TOKENS[preset]))
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    _, prompts = math_prompts(tok, args.prompts)
    sampling = dict(n=args.n, temperature=1.0, top_p=1.0, max_tokens=args.max_tokens)
    engines = {k: EngineProcess(k, model_dir, args.hf_batch_size) for k in ("hf", "vllm")}
    runs: dict[str, list[dict]] = {k: [] for k in engines}
    try:
        for e in engines.values():  # warm-up: kernels, allocator, vLLM's first-batch work
            e.generate(prompts[:2], **{**sampling, "n": 2, "max_tokens": 16, "seed": 1})
        for r in range(args.repeats):
            for kind, e in engines.items():
                res = e.generate(prompts, **{**sampling, "seed": 1000 + r})
                res["load1"] = load1()
                runs[kind].append(res)
                print(f"[rollout] {preset} {kind} repeat {r}: {sum(res['lengths'])} tokens in "
                      f"{res['wall_s']:.2f}s ({sum(res['lengths']) / res['wall_s']:.0f} tok/s), load {res['load1']}",
                      flush=True)
    finally:
        for e in engines.values():
            e.close()

    def summary(kind: str) -> dict:
        rs = runs[kind]
        tps = [sum(x["lengths"]) / x["wall_s"] for x in rs]
        tpc = [sum(x["lengths"]) / max(x["cpu_s"], 1e-9) for x in rs]
        return {"tokens_per_s": round(statistics.median(tps), 1), "tokens_per_s_all": [round(t, 1) for t in tps],
                "tokens_per_cpu_s": round(statistics.median(tpc), 1),
                "seconds_median": round(statistics.median(x["wall_s"] for x in rs), 3),
                "startup_s": round(engines[kind].startup_s, 2),
                "lengths": length_stats([n for x in rs for n in x["lengths"]], args.max_tokens),
                "load1_during": [x["load1"] for x in rs]}

    from core.checkpoint import load_hf

    params = count_parameters(load_hf(model_dir)[0])
    hf, vllm = summary("hf"), summary("vllm")
    return {"preset": preset, "model": model_dir, "parameters": params,
            "policy": _describe(model_dir),
            "prompts": args.prompts, "samples_per_prompt": args.n, "samples": args.prompts * args.n,
            "max_tokens": args.max_tokens, "hf": hf, "vllm": vllm,
            "vllm_tokens_per_s": vllm["tokens_per_s"], "hf_tokens_per_s": hf["tokens_per_s"],
            "ratio": round(vllm["tokens_per_s"] / hf["tokens_per_s"], 2),
            "ratio_per_cpu_s": round(vllm["tokens_per_cpu_s"] / hf["tokens_per_cpu_s"], 2)}


def _describe(model_dir: str) -> str:
    meta = Path(model_dir) / "bench_policy.json"
    if meta.exists():
        m = json.loads(meta.read_text())
        return (f"random-init {m['preset']} model, eos output row rescaled (x{m['eos_row_scale']:.2f}, "
                f"shift {m['eos_bias_like_shift']:.2f}) for a mean eos probability of "
                f"{m['target_mean_eos_prob']:.4f} per token, context spread {m['eos_logit_spread']} nats")
    return "tiny SFT policy (the GRPO recipe's tiny default)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="tiny,small", help="comma-separated; the larger one is the headline")
    ap.add_argument("--policy", default="auto", choices=["auto", "sft", "eos"],
                    help="see benchmarks/common.py bench_policy (auto: tiny SFT policy if built, else eos-calibrated)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--n", type=int, default=8, help="samples per prompt")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--hf-batch-size", type=int, default=64, help="the HF fallback's default (GeneratorConfig)")
    ap.add_argument("--max-load", type=float, default=3.0, help="wait for the 1-min load average to drop below this")
    ap.add_argument("--max-wait", type=float, default=0.0, help="seconds to wait for a quiet machine (0 = don't)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rollout_vllm_vs_hf.json"))
    args = ap.parse_args()
    presets = args.presets.split(",")
    for p in presets:  # build (or find) the policies before measuring anything
        bench_policy(p, args.policy, MEAN_TOKENS[p])
    gate = wait_for_quiet(args.max_load, args.max_wait) if args.max_wait else {"load_at_start": load1()}
    facts = machine_facts()
    results = [bench_preset(p, args) for p in presets]
    head = max(results, key=lambda r: r["parameters"])  # the larger preset is the headline
    out = {"benchmark": "rollout_vllm_vs_hf",
           "command": "python " + " ".join(["benchmarks/bench_rollout.py", *sys.argv[1:]]),
           "vllm_tokens_per_s": head["vllm_tokens_per_s"], "hf_tokens_per_s": head["hf_tokens_per_s"],
           "ratio": head["ratio"], "headline_preset": head["preset"],
           "machine": {**facts, "load_average_after": [round(x, 2) for x in __import__("os").getloadavg()],
                       "quiet_gate": gate},
           "settings": {"temperature": 1.0, "top_p": 1.0, "dtype": "float32",
                        "vllm": "in-process engine, OpenMP threads on both cores, 1 GiB KV cache, eager",
                        "hf": f"HFEngine (transformers generate, left padding, batch {args.hf_batch_size}), torch default threads",
                        "tokens_counted": "generated tokens only (completion lengths incl. eos), wall time of the generate call"},
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: out[k] for k in ("vllm_tokens_per_s", "hf_tokens_per_s", "ratio")}), flush=True)


if __name__ == "__main__":
    main()
