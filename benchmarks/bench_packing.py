"""Packed (padding-free) vs padded micro-batches in the policy worker: log-prob and GRPO
train-step time and peak memory on the 24 M preset at a realistic length spread.

    python benchmarks/bench_packing.py [--sequences 64] [--micro-batch-size 32] [--repeats 2]

The policy is the embedded `small` preset (~24 M parameters, random weights, the project's
1k tokenizer). The batch mimics a GRPO mini-batch: prompts of 16-96 tokens and responses
whose lengths follow a geometric law (mean ~110, 4-400 tokens), as sampled rollouts end at
varied lengths. Each mode (packing off / on) runs in a fresh process: one warm-up call,
then `--repeats` timed `PolicyWorker.logprobs` and `PolicyWorker.train` calls (the median
is reported); the peak resident memory (VmHWM) is reset after the model is built, so the
figure is what the calls added. Both modes start from the same weights and batch: the
old log-probs and the step statistics must agree within 1e-5 (checked and recorded).
Writes benchmarks/results/packing.json. CPU only (no GPU is lent to this task).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _status_mib(key: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) / 1024


def make_batch(n: int, vocab: int, seed: int = 0):
    from rl.batch import RolloutBatch

    rng = random.Random(seed)
    seqs, plens = [], []
    for _ in range(n):
        p = rng.randint(16, 96)
        r = 4
        while r < 400 and rng.random() > 1 / 110:  # geometric response length, mean ~110
            r += 1
        seqs.append([rng.randint(3, vocab - 1) for _ in range(p + r)])
        plens.append(p)
    return RolloutBatch(seqs, plens, advantages=[rng.uniform(-1, 1) for _ in seqs],
                        loss_masks=[[1] * (len(s) - p) for s, p in zip(seqs, plens)])


def run_mode(model_dir: str, packing: bool, n: int, micro: int, repeats: int) -> dict:
    import torch

    from core.training import TrainConfig
    from rl.batch import micro_batches, model_inputs
    from rl.losses import ClippedPolicyLoss, PolicyLossConfig
    from rl.policy_worker import PolicyWorker

    torch.set_num_threads(2)
    worker = PolicyWorker(model_dir, TrainConfig(lr=1e-5, schedule="constant", warmup_steps=0), keep_reference=False,
                          micro_batch_size=micro, packing="on" if packing else "off")
    batch = make_batch(n, worker.tokenizer.vocab_size)
    computed = 0  # token positions the model runs over (real + padding)
    for idx in micro_batches([len(s) for s in batch.sequences], micro, 0, packed=packing):
        sub = batch.select(idx)
        computed += model_inputs(sub.sequences, sub.prompt_lens, worker.pad_id, worker.packing).input_ids.numel()
    real = sum(len(s) for s in batch.sequences)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark to the current RSS
    base = _status_mib("VmRSS")
    old = worker.logprobs(batch)  # warm-up
    batch.old_logprobs = old
    loss = ClippedPolicyLoss.for_batch(PolicyLossConfig(), batch.loss_masks)
    logprob_s, train_s, stats = [], [], []
    state = {k: v.clone() for k, v in worker.backend.model.state_dict().items()}
    for _ in range(repeats):
        start = time.perf_counter()
        worker.logprobs(batch)
        logprob_s.append(time.perf_counter() - start)
        worker.backend.model.load_state_dict(state)  # every timed step starts from the same weights
        start = time.perf_counter()
        stats.append(worker.train(batch, loss))
        train_s.append(time.perf_counter() - start)
    return {"packing": packing, "sequences": n, "micro_batch_size": micro, "real_tokens": real,
            "computed_tokens": computed, "padding_fraction": round(1 - real / computed, 3),
            "logprobs_s": round(statistics.median(logprob_s), 2), "train_step_s": round(statistics.median(train_s), 2),
            "logprobs_s_all": [round(x, 2) for x in logprob_s], "train_step_s_all": [round(x, 2) for x in train_s],
            "peak_extra_mib": round(_status_mib("VmHWM") - base, 1),
            "old_logprobs": old, "step": {k: stats[0][k] for k in ("loss", "tokens", "entropy", "grad_norm")}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sequences", type=int, default=64)
    ap.add_argument("--micro-batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--mode", default="", help="internal: packed|padded MODEL_DIR, run in a child process")
    ap.add_argument("--model-dir", default="")
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.model_dir, args.mode == "packed", args.sequences, args.micro_batch_size,
                                  args.repeats)))
        return
    from benchmarks.common import machine_facts
    from core.tiny import build_tiny_model, count_parameters

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_model(Path(tmp) / "model", preset=args.preset, seed=0))
        from transformers import AutoModelForCausalLM

        params = count_parameters(AutoModelForCausalLM.from_pretrained(model_dir))
        modes = {}
        for mode in ("padded", "packed"):
            out = subprocess.run([sys.executable, __file__, "--mode", mode, "--model-dir", model_dir,
                                  "--sequences", str(args.sequences), "--micro-batch-size", str(args.micro_batch_size),
                                  "--repeats", str(args.repeats)], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{mode} failed:\n{out.stderr[-4000:]}")
            modes[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            print({k: v for k, v in modes[mode].items() if k != "old_logprobs"}, flush=True)
    pad, pk = modes["padded"], modes["packed"]
    logp_diff = max(abs(a - b) for ra, rb in zip(pad.pop("old_logprobs"), pk.pop("old_logprobs"))
                    for a, b in zip(ra, rb))
    step_diff = {k: abs(pad["step"][k] - pk["step"][k]) for k in pad["step"]}
    result = {
        "command": "python benchmarks/bench_packing.py " + " ".join(sys.argv[1:]),
        "preset": args.preset, "parameters": params,
        "length_spread": "prompts 16-96 tokens, responses geometric (mean ~110, 4-400 tokens)",
        "modes": modes,
        "speedup_logprobs": round(pad["logprobs_s"] / pk["logprobs_s"], 2),
        "speedup_train_step": round(pad["train_step_s"] / pk["train_step_s"], 2),
        "peak_memory_ratio_packed_to_padded": round(pk["peak_extra_mib"] / pad["peak_extra_mib"], 2),
        "max_abs_logprob_diff": logp_diff, "step_stat_abs_diff": step_diff,
        "device": "cpu (no GPU lent to this task)",
        "machine": machine_facts(),
    }
    out = ROOT / "benchmarks" / "results" / "packing.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("speedup_logprobs", "speedup_train_step",
                                             "peak_memory_ratio_packed_to_padded", "max_abs_logprob_diff")}))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
