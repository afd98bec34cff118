"""The GPU paths, checked on one CUDA device with torch + transformers only (no Ray, vLLM,
DeepSpeed): the policy worker's bf16 FSDP2 train step and log-probs, HF generation, and the
SFT trainer's MFU on packed rows, for a ~1B-parameter random-weight Llama.

    python benchmarks/gpu_check.py [--steps 3] [--out benchmarks/results/gpu_check.json]

Without CUDA it prints "no CUDA: ..." and exits with status 2, having run nothing. It has
not been run on a GPU yet: no GPU was lent to the task that wrote it.

What it asserts on the GPU: the policy and reference log-probs agree before training (same
weights, same sharding), every result tensor came from the CUDA device, the GRPO steps give
finite losses and gradient norms and move the policy, and generation returns the tokens
asked for. MFU counts 6 x parameters x tokens (attention FLOPs not counted) against the
device's dense bf16 peak where it is known (H100/H200 989, A100 312 TFLOP/s).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ~1.1B parameters: the `1b` preset's shape with a 32k vocabulary.
SHAPE = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
             num_key_value_heads=8, vocab_size=32000, max_position_embeddings=4096)
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def _peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _join_group_of_one() -> None:
    """A one-rank NCCL group, so the backend takes the FSDP2 path (it plain-wraps without a group)."""
    import torch.distributed as tdist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tdist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


def check_policy_worker(model_dir: Path, steps: int) -> dict:
    import torch

    from core.training import TrainConfig
    from rl.batch import RolloutBatch
    from rl.losses import ClippedPolicyLoss, PolicyLossConfig
    from rl.policy_worker import PolicyWorker

    torch.cuda.reset_peak_memory_stats()
    worker = PolicyWorker(str(model_dir), TrainConfig(lr=1e-5, backend="fsdp2", dtype="bfloat16", total_steps=steps),
                          keep_reference=True, micro_batch_size=4)
    assert type(worker.backend).__name__ == "FSDP2Backend", type(worker.backend)
    g = torch.Generator().manual_seed(0)
    n, p, r = 8, 128, 1024
    batch = RolloutBatch([torch.randint(3, SHAPE["vocab_size"], (p + r,), generator=g).tolist() for _ in range(n)],
                         [p] * n, [(-1.0) ** i for i in range(n)], [[1] * r for _ in range(n)])
    start = time.perf_counter()
    batch.ref_logprobs = worker.logprobs(batch, model="reference")
    batch.old_logprobs = worker.logprobs(batch)
    torch.cuda.synchronize()
    logprob_s = (time.perf_counter() - start) / 2
    diff = max(abs(a - b) for ra, rb in zip(batch.ref_logprobs, batch.old_logprobs) for a, b in zip(ra, rb))
    assert diff <= 1e-4, f"policy and reference disagree before training by {diff}"
    loss = ClippedPolicyLoss.for_batch(PolicyLossConfig(kl_coef=0.05), batch.loss_masks)
    stats, start = [], time.perf_counter()
    for _ in range(steps):
        stats.append(worker.train(batch, loss))
        batch.old_logprobs = worker.logprobs(batch)
    torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / steps
    assert all(torch.isfinite(torch.tensor([s["loss"], s["grad_norm"]])).all() for s in stats), stats
    assert stats[-1]["kl"] > 0, "the policy did not move away from its reference"
    return {"response_tokens": n * r, "logprob_pass_s": round(logprob_s, 3), "train_step_s": round(step_s, 3),
            "last_step": stats[-1], "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1)}


def check_generation(model_dir: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.bfloat16).cuda().eval()
    prompts = torch.randint(3, SHAPE["vocab_size"], (8, 64), device="cuda")
    new = 256
    model.generate(prompts[:1], max_new_tokens=4, do_sample=False)  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new, min_new_tokens=new,
                         do_sample=False)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    assert out.shape == (8, 64 + new), out.shape
    return {"sequences": 8, "new_tokens": new, "seconds": round(seconds, 3),
            "tokens_per_s": round(8 * new / seconds, 1)}


def check_trainer_mfu(model_dir: Path, steps: int, parameters: int) -> dict:
    import torch

    from core.checkpoint import load_hf
    from core.tokenization import EncodedConversation
    from core.training import TrainConfig, build_backend
    from sft.packing import build_row
    from sft.trainer import train_step

    model, _ = load_hf(model_dir)
    backend = build_backend(TrainConfig(lr=1e-5, dtype="bfloat16", total_steps=steps + 1), model)
    pack_len, rows_per_step = 4096, 4
    g = torch.Generator().manual_seed(1)

    def doc(n: int) -> EncodedConversation:
        return EncodedConversation(torch.randint(3, SHAPE["vocab_size"], (n,), generator=g).tolist(), [1] * n, 0)

    rows = [build_row([doc(1024), doc(1536), doc(1536)], pack_len, 0) for _ in range(rows_per_step)]
    micro = [[0, 1], [2, 3]]
    train_step(backend, rows, micro, 0)  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    for s in range(steps):
        train_step(backend, rows, micro, s + 1)
    torch.cuda.synchronize()
    tokens_per_s = steps * pack_len * rows_per_step / (time.perf_counter() - start)
    achieved = 6 * parameters * tokens_per_s / 1e12
    peak = _peak_tflops(torch.cuda.get_device_name())
    return {"pack_len": pack_len, "rows_per_step": rows_per_step, "tokens_per_s": round(tokens_per_s, 1),
            "model_tflops": round(achieved, 1), "peak_bf16_tflops": peak,
            "mfu": round(achieved / peak, 3) if peak else None}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"))
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA: benchmarks/gpu_check.py checks the GPU paths (bf16 FSDP2 policy step and log-probs, "
              "HF generation, trainer MFU) and needs an NVIDIA GPU; nothing was run.")
        return 2
    from benchmarks.bench_policy_memory import build_model

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:])}
    with tempfile.TemporaryDirectory() as tmp:
        result["parameters"] = build_model(Path(tmp), SHAPE)
        model_dir = Path(tmp) / "model"
        _join_group_of_one()
        for name, check in (("policy_worker_fsdp2_bf16", lambda: check_policy_worker(model_dir, args.steps)),
                            ("hf_generation_bf16", lambda: check_generation(model_dir)),
                            ("trainer_packed_bf16", lambda: check_trainer_mfu(model_dir, args.steps,
                                                                               result["parameters"]))):
            result[name] = check()
            print(name, json.dumps(result[name]), flush=True)
            torch.cuda.empty_cache()
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
