"""Per-rank peak memory of the policy worker (policy + KL reference + AdamW state) for a
~150M-parameter Llama at 1, 2 and 4 FSDP2 ranks over gloo.

    python benchmarks/bench_policy_memory.py [--worlds 1,2,4] [--steps 1]

Each rank is a plain process running `rl.policy_worker.PolicyWorker` (no Ray): the model is
built on the meta device, sharded, and each rank reads only its slice of the safetensors
file; the reference is sharded on the same mesh. Every rank computes the old and reference
log-probs of its shard of a small batch and takes `--steps` GRPO optimizer steps with KL on
(AdamW allocates its moments on the first step). Recorded per rank: the peak resident set
(VmHWM, the whole process: Python, torch, transformers included), the resident set after
the imports, and the parameters it holds locally. Writes benchmarks/results/policy_memory.json
with `parameters` and `peak_rss_mib` keyed by world size (the max over that world's ranks).
The ranks run with glibc's mmap threshold fixed (see MALLOC), so RSS follows live memory.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ~150M parameters: 14 layers of 768 wide (GQA 12/4 heads), a 32k vocabulary, untied head.
SHAPE = dict(hidden_size=768, intermediate_size=2304, num_hidden_layers=14, num_attention_heads=12,
             num_key_value_heads=4, vocab_size=32000, max_position_embeddings=512)
BATCH = dict(sequences=8, prompt_tokens=16, response_tokens=48)
# glibc raises its mmap threshold as large blocks are freed (up to 32 MiB) and then keeps freed
# blocks below it in its arenas, so RSS would track the allocator's high-water mark, not the
# live tensors (FSDP2's per-layer gather buffers are ~28 MiB here). A fixed threshold returns
# every freed block >= 64 KiB to the OS. GPU memory comes from the CUDA caching allocator instead.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _status_mib(key: str) -> float:
    return int(re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024


def build_model(out: Path, shape: dict | None = None) -> int:
    """A random-weight Llama HF directory `out/model` (fp32 safetensors) of `shape` (default
    SHAPE) with the tiny tokenizer; returns its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.tiny import build_tiny_model

    tok_dir = build_tiny_model(out / "tok", preset="tiny")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**(shape or SHAPE), tie_word_embeddings=False, pad_token_id=0,
                                         bos_token_id=1, eos_token_id=2))
    model.save_pretrained(str(out / "model"), safe_serialization=True)
    for f in tok_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens")):
            (out / "model" / f.name).write_bytes(f.read_bytes())
    return sum(p.numel() for p in model.parameters())


def run_rank(model_dir: str, rank: int, world: int, port: int, steps: int, out: str) -> None:
    baseline = _status_mib("VmRSS")  # before torch: the interpreter alone
    import torch

    from core.training import TrainConfig
    from rl.batch import RolloutBatch, shard_batch
    from rl.losses import ClippedPolicyLoss, PolicyLossConfig
    from rl.policy_worker import PolicyWorker

    torch.set_num_threads(1)
    imported = _status_mib("VmRSS")
    worker = PolicyWorker(model_dir, TrainConfig(lr=1e-5, backend="fsdp2", total_steps=steps), rank=rank,
                          world_size=world, master_port=port, keep_reference=True, micro_batch_size=BATCH["sequences"])
    loaded = _status_mib("VmRSS")
    g = torch.Generator().manual_seed(0)
    n, p, r = BATCH["sequences"], BATCH["prompt_tokens"], BATCH["response_tokens"]
    full = RolloutBatch([torch.randint(3, SHAPE["vocab_size"], (p + r,), generator=g).tolist() for _ in range(n)],
                        [p] * n, [(-1.0) ** i for i in range(n)], [[1] * r for _ in range(n)])
    loss = ClippedPolicyLoss.for_batch(PolicyLossConfig(kl_coef=0.05), full.loss_masks)
    shard = shard_batch(full, world)[rank]
    shard.ref_logprobs = worker.logprobs(shard, model="reference")
    stats = []
    start = time.perf_counter()
    for _ in range(steps):
        shard.old_logprobs = worker.logprobs(shard)
        stats.append(worker.train(shard, loss))
    seconds = time.perf_counter() - start

    def local(module) -> int:
        return sum((q.to_local() if hasattr(q, "to_local") else q).numel() for q in module.parameters())

    Path(out).write_text(json.dumps({
        "rank": rank, "peak_rss_mib": round(_status_mib("VmHWM"), 1), "rss_interpreter_mib": round(baseline, 1),
        "rss_after_imports_mib": round(imported, 1), "rss_after_load_mib": round(loaded, 1),
        "local_policy_parameters": local(worker.backend.model),
        "local_reference_parameters": local(worker.references["reference"]),
        "step_seconds": round(seconds / steps, 2), "loss": stats[-1]["loss"], "grad_norm": stats[-1]["grad_norm"]}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_world(model_dir: Path, world: int, steps: int, workdir: Path) -> list[dict]:
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **MALLOC}
    outs = [workdir / f"w{world}.r{r}.json" for r in range(world)]
    procs = [subprocess.Popen([sys.executable, __file__, "--rank", str(r), "--world", str(world), "--port", str(port),
                               "--steps", str(steps), "--model-dir", str(model_dir), "--out", str(outs[r])], env=env)
             for r in range(world)]
    try:
        for proc in procs:
            if proc.wait(timeout=1800) != 0:
                raise RuntimeError(f"a rank of world {world} failed (exit {proc.returncode})")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [json.loads(o.read_text()) for o in outs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", default="1,2,4")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--rank", type=int, default=-1, help="internal: run one rank")
    ap.add_argument("--world", type=int, default=1)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--model-dir", default="")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.rank >= 0:
        run_rank(args.model_dir, args.rank, args.world, args.port, args.steps, args.out)
        return
    from benchmarks.common import machine_facts

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                                f"from benchmarks.bench_policy_memory import build_model; from pathlib import Path; "
                                f"print(build_model(Path({tmp!r})))"], capture_output=True, text=True, check=True)
        parameters = int(build.stdout.strip().splitlines()[-1])
        ranks = {}
        for world in [int(w) for w in args.worlds.split(",")]:
            ranks[str(world)] = run_world(work / "model", world, args.steps, work)
            print(world, ranks[str(world)], flush=True)
    full_fp32_mib = parameters * 4 / 2**20
    peak = {w: max(r["peak_rss_mib"] for r in rs) for w, rs in ranks.items()}
    result = {
        "command": "python benchmarks/bench_policy_memory.py " + " ".join(sys.argv[1:]),
        "parameters": {w: parameters for w in ranks},
        "peak_rss_mib": peak,
        "ratio_to_one_rank": {w: round(v / peak["1"], 3) for w, v in peak.items()} if "1" in peak else {},
        "full_model_fp32_mib": round(full_fp32_mib, 1),
        "max_local_policy_parameters": {w: max(r["local_policy_parameters"] for r in rs) for w, rs in ranks.items()},
        "ranks": ranks,
        "shape": SHAPE, "batch": BATCH, "steps": args.steps,
        "what": "per-rank peak RSS (VmHWM) of a PolicyWorker process: policy + KL reference (sharded on the same "
                "mesh) + AdamW + one GRPO step with KL; includes the interpreter, torch and transformers",
        "env": MALLOC,
        "device": "cpu, FSDP2 over gloo (no GPU lent to this task)",
        "machine": machine_facts(),
    }
    out = ROOT / "benchmarks" / "results" / "policy_memory.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("parameters", "peak_rss_mib", "ratio_to_one_rank")}))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
