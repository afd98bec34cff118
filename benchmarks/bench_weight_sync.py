"""Weight sync at ~150 M parameters: the object store vs the collective transport.

    python benchmarks/bench_weight_sync.py [--policy-ranks 2] [--bucket-mb 64] [--repeats 3]

A random-weight Llama (hidden 1024, 13 layers, ~148 M parameters, float32: ~565 MiB) is
trained by `--policy-ranks` FSDP2 ranks over gloo and served by one vLLM-CPU engine, each
in its own Ray actor. Before the timed syncs the engine is given perturbed weights, so the
parity probe after them (4 sequences, per-token logprobs, trainer vs engine) shows that the
sync really replaced every weight. For each transport, each repeat records the seconds of
the sync itself, the peak memory above the sync's start on policy rank 0 and on the engine
(private memory, and resident memory including touched pages of Ray's shared object store;
core/peak_memory.py), and the probe's max |logprob diff|. A third row sends the whole model
as one object-store bucket: the memory profile of gathering everything before sending.
Writes benchmarks/results/weight_sync.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine_facts  # noqa: E402

PRESET = dict(hidden_size=1024, num_hidden_layers=13, num_attention_heads=16, num_key_value_heads=4,
              intermediate_size=2816)


def _model(out: Path) -> tuple[str, int, float]:
    from core.presets import ModelPreset
    from core.tiny import build_tiny_model
    from safetensors import safe_open

    model_dir = build_tiny_model(out, preset=ModelPreset(**PRESET), seed=0)
    numel, nbytes = 0, 0
    for f in model_dir.glob("*.safetensors"):
        with safe_open(f, "pt") as st:
            for k in st.keys():
                t = st.get_slice(k)
                n = 1
                for d in t.get_shape():
                    n *= d
                numel += n
                nbytes += n * 4
    return str(model_dir), numel, nbytes / 2**20


def _perturb(gens, model_dir: str) -> None:
    """Noisy weights into the engine, one decoder layer at a time (a whole model at once would
    leave the engine's allocator holding a model's worth of free memory)."""
    import torch
    from safetensors import safe_open

    from rl.weight_stream import group_key

    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(f, "pt") as st:
            groups: dict[str, list[str]] = {}
            for k in st.keys():
                groups.setdefault(group_key(k), []).append(k)
            for names in groups.values():
                part = {k: st.get_tensor(k) for k in names}
                gens.update_weights([{k: v + 0.05 * torch.randn_like(v) for k, v in part.items()}])


def _probe(vocab: int):
    import torch

    from rl.batch import RolloutBatch

    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(5, vocab - 1, (64,), generator=g).tolist() for _ in range(4)]
    return RolloutBatch(seqs, [16] * 4)


def _timed_sync(policy, gens, bucket_mb: float, probe) -> dict:
    import ray

    from rl.weight_sync import sync_weights

    sides = [policy.workers[0], gens.workers[0]]
    ray.get([w.start_peak_memory.remote() for w in sides])
    report = sync_weights(policy, gens, bucket_mb, probe=None, tolerance=0.0)
    trainer, engine = ray.get([w.stop_peak_memory.remote() for w in sides])
    from rl.weight_sync import parity_diff

    diff, _ = parity_diff(policy, gens, probe)
    return {"seconds": round(report.seconds, 3), "buckets": report.buckets, "bytes": report.bytes,
            "trainer_private_mib": round(trainer.private_mib, 1), "trainer_rss_mib": round(trainer.rss_mib, 1),
            "engine_private_mib": round(engine.private_mib, 1), "engine_rss_mib": round(engine.rss_mib, 1),
            "max_logprob_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy-ranks", type=int, default=2)
    ap.add_argument("--bucket-mb", type=float, default=64.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "weight_sync.json"))
    args = ap.parse_args()

    import ray

    from core.ray_utils import init_ray
    from core.training import TrainConfig
    from rl.actors import GeneratorGroup, PlacementConfig, PolicyGroup
    from rl.generator import GeneratorConfig

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-weight-sync-") as tmp:
        model_dir, numel, model_mib = _model(Path(tmp) / "model")
        print(f"[bench] model: {numel / 1e6:.1f} M parameters, {model_mib:.0f} MiB float32", flush=True)
        init_ray(num_cpus=args.policy_ranks + 2)
        placement = PlacementConfig(policy_world_size=args.policy_ranks, policy_num_cpus=1, policy_threads=1)
        policy = PolicyGroup(model_dir, TrainConfig(backend="fsdp2"), placement, keep_reference=False,
                             micro_batch_size=4)
        gens = GeneratorGroup(model_dir, GeneratorConfig(engine="vllm", max_model_len=256), placement, seed=0)
        results: dict[str, dict] = {}
        try:
            probe = _probe(json.loads((Path(model_dir) / "config.json").read_text())["vocab_size"])
            runs = [("object_store", args.bucket_mb), ("collective", args.bucket_mb),
                    ("object_store_one_bucket", 2.0 * model_mib)]
            for name, bucket_mb in runs:
                gens.connect(policy, name.removesuffix("_one_bucket"))
                _perturb(gens, model_dir)
                reps = [_timed_sync(policy, gens, bucket_mb, probe) for _ in range(args.repeats)]
                for i, r in enumerate(reps):
                    print(f"[bench] {name} #{i}: {r}", flush=True)
                results[name] = {
                    "bucket_mb": round(bucket_mb, 1), "repeats": reps,
                    "seconds_median": statistics.median(r["seconds"] for r in reps),
                    **{f"{k}_max": max(r[k] for r in reps) for k in
                       ("trainer_private_mib", "trainer_rss_mib", "engine_private_mib", "engine_rss_mib",
                        "max_logprob_diff")}}
        finally:
            gens.shutdown()
            policy.shutdown()
            ray.shutdown()
    out = {"parameters": numel, "model_mib": round(model_mib, 1), "policy_ranks": args.policy_ranks,
           "engine": "vLLM-CPU, in-process in a Ray actor", "policy": f"FSDP2 over gloo, {args.policy_ranks} ranks",
           "model": PRESET, "results": results, "seconds_total": round(time.time() - started, 1),
           "command": "python benchmarks/bench_weight_sync.py " + " ".join(sys.argv[1:]), "machine": machine_facts()}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: {m: v[m] for m in v if m != "repeats"} for k, v in results.items()}, indent=2))
    print(f"[bench] wrote {args.out}")


if __name__ == "__main__":
    main()
