"""Asynchronous vs synchronous GRPO on this machine: seconds per step, samples/s, and how
long the generator and the trainer each wait.

    python benchmarks/bench_async_grpo.py [--preset small] [--steps 4] [--modes sync,1] [--repeats 1]
                                          [--precision fp32|bf16] [--generator-dtype float32|bfloat16]

Each mode is our GRPO loop (rl/trainer.py) as benchmarks/bench_grpo_vs_trl.py runs it
(same preset policy, prompts, reward, micro-batching; one vLLM-CPU generator in a Ray actor,
one policy worker), in its own spawned process, one after the other. Modes: `sync` = the
synchronous loop; an integer K = asynchronous GRPO with max_staleness K (the rollout of step
s+K is generated while step s trains; pi_old recomputed by the trainer, tis_cap 2).

Waits: in async mode `time/trainer_wait` (the trainer blocked on the producer: for its
rollout, and for the generation in flight before a weight sync) and `time/generator_wait`
(the producer blocked on the policy version it needs) come from metrics.jsonl. In the
synchronous loop nothing overlaps: the trainer waits for the whole rollout (generate +
reward) and the generators idle through the rest of the step (log-probs, updates, sync).
The first step of each run is warm-up and left out. With `--repeats N` the modes alternate
(sync, 1, sync, 1, ...) so a change in the machine's load hits both, and each mode's figures
are means over the timed steps of all its runs. Writes benchmarks/results/async_grpo.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_grpo_vs_trl import SHAPES, Shape, run_side  # noqa: E402
from benchmarks.common import bench_policy, load1, machine_facts  # noqa: E402


def summarize(runs: list[dict], shape: Shape, warmup: int) -> dict:
    timed = [s for res in runs for s in (res["per_step"][warmup:] or res["per_step"])]

    def mean(key: str) -> float:
        return round(sum(s.get(key, 0.0) or 0.0 for s in timed) / len(timed), 3)

    secs = mean("seconds")
    if shape.max_staleness is None:
        trainer_wait = mean("generate") + mean("reward")
        generator_wait = round(secs - trainer_wait, 3)
    else:
        trainer_wait, generator_wait = mean("trainer_wait"), mean("generator_wait")
    return {"max_staleness": shape.max_staleness, "seconds_per_step": secs,
            "samples_per_s": round(shape.samples_per_step / secs, 2),
            "trainer_wait_s": round(trainer_wait, 3), "generator_wait_s": generator_wait,
            "breakdown_mean_s": {k: mean(k) for k in ("generate", "reward", "logprobs", "train", "sync")},
            "response_tokens_mean": mean("response_tokens_mean"), "timed_steps": len(timed),
            "max_sync_logprob_diff": max(r["max_sync_logprob_diff"] for r in runs),
            "runs": [{"wall_total_s": r["wall_total_s"], "load1_before": r["load1_before"],
                      "load1_after": r["load1_after"], "per_step": r["per_step"]} for r in runs]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small", choices=sorted(SHAPES))
    ap.add_argument("--steps", type=int, default=4, help="GRPO steps per mode, the first is warm-up")
    ap.add_argument("--warmup-steps", type=int, default=1)
    ap.add_argument("--modes", default="sync,1", help="comma-separated: sync and/or max_staleness values")
    ap.add_argument("--repeats", type=int, default=1, help="runs per mode, alternating the modes")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--generator-dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--policy", default="auto", choices=["auto", "sft", "eos"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "async_grpo.json"))
    args = ap.parse_args()
    prompts, g, max_tokens, mean_tokens = SHAPES[args.preset]
    base = Shape(args.preset, str(bench_policy(args.preset, args.policy, mean_tokens)), prompts, g, max_tokens,
                 args.steps, bf16=args.precision == "bf16", generator_dtype=args.generator_dtype)
    out = {"benchmark": "async_grpo", "command": "python " + " ".join(["benchmarks/bench_async_grpo.py", *sys.argv[1:]]),
           "preset": args.preset, "settings": asdict(base), "machine": machine_facts(), "modes": {}}
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in [m for _ in range(args.repeats) for m in args.modes.split(",")]:
            shape = replace(base, max_staleness=None if mode == "sync" else int(mode))
            print(f"[async-bench] {args.preset}: mode {mode} ({shape.steps} steps, {shape.samples_per_step} "
                  f"samples/step), load {load1()}", flush=True)
            runs.setdefault(mode, []).append(run_side("reforge", shape, tmp))
            res = summarize(runs[mode], shape, args.warmup_steps)
            out["modes"][mode] = res
            print(f"[async-bench] mode {mode}: {res['seconds_per_step']} s/step, {res['samples_per_s']} samples/s, "
                  f"trainer waits {res['trainer_wait_s']} s, generator waits {res['generator_wait_s']} s, "
                  f"{res['breakdown_mean_s']}", flush=True)
            out["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(out, indent=2))  # rewritten after each mode
    modes = out["modes"]
    if "sync" in modes:
        for mode, res in modes.items():
            res["speedup_vs_sync"] = round(modes["sync"]["seconds_per_step"] / res["seconds_per_step"], 3)
        Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({m: (r["seconds_per_step"], r["samples_per_s"]) for m, r in modes.items()}), flush=True)


if __name__ == "__main__":
    main()
