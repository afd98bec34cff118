"""SFT training throughput (packed tokens/s, forward + backward + AdamW) on this machine.

    python benchmarks/bench_sft.py [--presets tiny,small] [--steps 6] [--threads 0]

Writes benchmarks/results/sft.json. The load average is recorded because the CI machine is
shared: tokens/s per CPU-second (`tokens_per_cpu_s`) is the contention-free figure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.checkpoint import load_hf  # noqa: E402
from core.data.synth import math_rows  # noqa: E402
from core.tiny import build_tiny_model, count_parameters  # noqa: E402
from core.training import TrainConfig, build_backend  # noqa: E402
from sft.batching import BatchPlan  # noqa: E402
from sft.packing import encode_rows, pack_documents  # noqa: E402
from sft.trainer import train_step  # noqa: E402

SHAPES = {"tiny": (512, 16), "small": (512, 4)}  # pack_len, rows per step


def bench(preset: str, steps: int, workdir: Path) -> dict:
    model, tok = load_hf(build_tiny_model(workdir / preset, preset=preset))
    pack_len, rows_per_step = SHAPES[preset]
    rows = pack_documents(encode_rows(tok, math_rows(1500, seed=0)), pack_len, tok.pad_token_id)
    backend = build_backend(TrainConfig(lr=1e-3, total_steps=steps + 1), model)
    plan = BatchPlan(len(rows), rows_per_step)
    train_step(backend, rows, plan.micro_batches(0), 0)  # warm-up
    wall, cpu, tokens, loss_tokens = time.time(), time.process_time(), 0, 0
    for s in range(1, steps + 1):
        st = train_step(backend, rows, plan.micro_batches(s), s)
        tokens += st.tokens
        loss_tokens += st.loss_tokens
    wall, cpu = time.time() - wall, time.process_time() - cpu
    return {"preset": preset, "parameters": count_parameters(model), "pack_len": pack_len,
            "tokens_per_step": pack_len * rows_per_step, "steps": steps,
            "tokens_per_s": round(tokens / wall, 1), "response_tokens_per_s": round(loss_tokens / wall, 1),
            "tokens_per_cpu_s": round(tokens / cpu, 1), "seconds_per_step": round(wall / steps, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sft.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench(p, args.steps, Path(tmp)) for p in args.presets.split(",")]
    out = {"benchmark": "sft_tokens_per_s", "command": "python " + " ".join(sys.argv),
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                       "load_average_before": round(load_before, 2),
                       "load_average_after": round(os.getloadavg()[0], 2)},
           "settings": "fp32, plain backend, packed rows with block-diagonal mask, AdamW",
           "results": results}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
