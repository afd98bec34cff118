"""The GRPO loop: rollout -> old/ref logprobs -> k updates -> weight sync + parity -> metrics.

The driver owns the data, the curriculum, scoring and bookkeeping; the policy workers and
generators are Ray actor groups. Every `checkpoint_every` steps core.checkpointer writes the
full state (policy weights, optimizer, scheduler and RNG, the sampler, stateful step hooks,
the step and the driver's figures) so a killed driver resumes where it stopped and
reproduces the uninterrupted run. With `async_rollout.max_staleness` set, rollouts come from
rl.async_rollout's producer thread, generated while earlier steps train (docs/async_grpo.md).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from transformers import AutoTokenizer

from core.checkpointer import POLICY_HF, Checkpointer, Stateful
from core.data.schema import Row, validate_row
from core.engines.base import SamplingSettings
from core.metrics import MetricsWriter, Progress, read_metrics
from core.run_dir import RunDir
from core.seed import seed_everything
from rl.actors import GeneratorGroup, PolicyGroup, PolicyWorkerDied
from rl.async_rollout import Produced, RolloutProducer
from rl.config import GRPOConfig
from rl.curriculum import PromptSampler
from rl.environment import make_environment
from rl.losses import ClippedPolicyLoss
from rl.multiturn import collect_multiturn_rollout, episode_metrics, run_episodes
from rl.prefilter import estimate_pass_rates, prefilter
from rl.rollout import collect_rollout, generate_and_score
from rl.scoring import Scorer
from rl.weight_sync import probe_from, sync_weights


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


class GRPOTrainer:
    def __init__(self, cfg: GRPOConfig, run: RunDir, train_rows: list[Row], test_rows: list[Row], scorer: Scorer):
        self.cfg, self.run, self.scorer = cfg, run, scorer
        self.train_rows, self.test_rows = train_rows, test_rows
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, local_files_only=True)
        self.ckpt_dir = run.path / "checkpoints"
        self.checkpointer = Checkpointer(self.ckpt_dir)
        self.loss_cfg = cfg.algorithm  # the algorithm config is the loss config (rl.losses.PolicyLossConfig)
        self.probe = None
        self.environment = None  # built in train(): its tools resolve before any actor starts
        self.max_sync_diff = 0.0
        # Called after every GRPO step as hook(trainer, step) -> extra metrics; this is how
        # other objectives (e.g. preference steps on the same policy workers) interleave.
        # A hook with state_dict()/load_state_dict() is checkpointed with the run.
        self.step_hooks: list[Callable[["GRPOTrainer", int], dict[str, Any]]] = []

    # ---- setup ---------------------------------------------------------------------------
    def _start_actors(self, weights_dir: str) -> None:
        """Generators start from `weights_dir` (the checkpoint's export on resume). The policy
        always starts from the starting model, so its KL reference stays anchored there; on
        resume `load_state` then restores the policy's own weights and optimizer."""
        cfg = self.cfg
        self.policy = PolicyGroup(cfg.model, cfg.train, cfg.placement, keep_reference=cfg.algorithm.kl_coef > 0,
                                  micro_batch_size=cfg.algorithm.micro_batch_size,
                                  micro_batch_tokens=cfg.algorithm.micro_batch_tokens, adapter=cfg.adapter,
                                  packing=cfg.algorithm.packing)
        self.generators = GeneratorGroup(weights_dir, cfg.generator, cfg.placement, seed=cfg.seed)
        self.generators.connect(self.policy, cfg.sync.transport, cfg.sync)

    def _pass_rates(self) -> tuple[list[Row], list[float], int]:
        cache = self.run.path / "pass_rates.json"
        if cache.exists():
            data = json.loads(cache.read_text())
        else:
            f = self.cfg.filter
            if f.enabled:
                rates = estimate_pass_rates(self.generators, self.scorer, self.tokenizer, self.train_rows, f.samples,
                                            f.temperature, self.cfg.rollout.max_tokens,
                                            f.reward or self.cfg.reward.accuracy_reward, seed=self.cfg.seed + 7)
            else:
                rates = [0.0] * len(self.train_rows)
            data = {"pass_rates": rates}
            cache.write_text(json.dumps(data))
        rates = data["pass_rates"]
        if not self.cfg.filter.enabled:
            return self.train_rows, rates, 0
        kept = prefilter(self.train_rows, rates, self.cfg.filter.max_pass_rate, self.cfg.filter.min_pass_rate)
        return kept.rows, kept.pass_rates, kept.dropped

    # ---- evaluation ----------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        out: dict[str, float] = {}
        ev = self.cfg.eval
        for mode in ev.modes:
            rows = [Row(r.id, r.messages, mode, r.reward, r.meta) for r in self.test_rows]
            greedy = SamplingSettings(n=1, temperature=0.0, max_tokens=ev.max_tokens)
            out.update(self._heldout(rows, greedy, f"heldout_accuracy_{mode}"))
            if self.environment is not None and self.cfg.environment.eval_without_tools:
                bare = [Row(r.id, r.messages, mode, r.reward, {**r.meta, "tools": []}) for r in self.test_rows]
                out.update(self._heldout(bare, greedy, f"heldout_accuracy_{mode}_no_tools"))
            if ev.samples > 0:
                sampled = SamplingSettings(n=ev.samples, temperature=ev.temperature, top_p=ev.top_p,
                                           max_tokens=ev.max_tokens, seed=self.cfg.seed + 11)
                out.update(self._heldout(rows, sampled, f"heldout_mean_accuracy_{mode}"))
        return out

    def _heldout(self, rows: list[Row], sampling: SamplingSettings, key: str) -> dict[str, float]:
        """Mean accuracy over prompts (each prompt: the mean over its samples), overall and per level.
        With an environment the episodes are played to the end (tools allowed) and the share of
        episodes that called a tool is reported beside the accuracy."""
        out: dict[str, float] = {}
        if self.environment is not None:
            cfg = self.cfg
            groups, _ = run_episodes(self.generators, self.environment, self.tokenizer, rows, sampling.n,
                                     sampling, cfg.environment, cfg.generator.max_model_len,
                                     accuracy_reward=cfg.reward.accuracy_reward)
            out[f"{key}_tool_call_rate"] = episode_metrics(groups)["tool_call_rate"]
        else:
            groups, _ = generate_and_score(self.generators, self.scorer, self.tokenizer, rows, sampling,
                                           self.cfg.reward.accuracy_reward)
        per_prompt = [(g.row.meta.get("difficulty"), sum(g.accuracy) / len(g.accuracy)) for g in groups]
        out[key] = sum(a for _, a in per_prompt) / max(len(per_prompt), 1)
        by_level: dict[int, list[float]] = {}
        for level, acc in per_prompt:
            if level is not None:
                by_level.setdefault(int(level), []).append(acc)
        for level, accs in sorted(by_level.items()):
            out[f"{key}_l{level}"] = sum(accs) / len(accs)
        return out

    # ---- the loop ------------------------------------------------------------------------
    def train(self) -> RunResult:
        """The run; a policy worker that dies stops it with the checkpoint to resume from."""
        try:
            return self._train()
        except PolicyWorkerDied as e:
            latest = self.checkpointer.latest()
            raise e.with_checkpoint(str(latest) if latest else None) from e

    def _train(self) -> RunResult:
        cfg = self.cfg
        seed_everything(cfg.seed)
        if cfg.environment.name:
            self.environment = make_environment(cfg.environment, self.tokenizer, self.scorer)
        resume_from = self.checkpointer.resolve(cfg.resume)
        self._start_actors(str(resume_from / POLICY_HF) if resume_from else cfg.model)
        rows, rates, dropped = self._pass_rates()
        sampler = PromptSampler(rates, cfg.rollout.prompts_per_step, cfg.steps, cfg.curriculum, seed=cfg.seed)
        self.checkpointer.register("sampler", sampler)
        for i, hook in enumerate(self.step_hooks):
            if isinstance(hook, Stateful):
                self.checkpointer.register(f"step_hook_{i}", hook)
        metrics = MetricsWriter(self.run.path, cfg.logging)
        producer = self._producer(rows, sampler)
        start_step, before = 0, None
        if resume_from:
            state = self.checkpointer.load(resume_from, policy=self.policy)
            start_step, meta = state["step"], state["meta"]
            before, self.max_sync_diff = meta["accuracy_before"], meta["max_sync_diff"]
            self.probe = _batch_from_json(meta["probe"]) if meta.get("probe") else None
            print(f"resumed from {resume_from} at step {start_step}", flush=True)
        else:
            before = self.evaluate()
            metrics.log(0, {**before, "prefilter_dropped": dropped, "prompts": len(rows)})
            print(f"[grpo] before training: {before}; prefilter dropped {dropped} of {len(self.train_rows)} prompts",
                  flush=True)
        progress = Progress("grpo", cfg.steps)
        if producer is not None:
            producer.publish(start_step)  # the generators hold the starting / the checkpoint's weights
            producer.start()
        try:
            self._loop(start_step, rows, sampler, producer, metrics, progress, before)
        finally:
            if producer is not None:
                producer.stop()
        after = self.evaluate()
        metrics.log(cfg.steps, {**after, "final": 1})
        metrics.close()
        key = f"heldout_accuracy_{cfg.eval.modes[0]}"
        summary = {
            "accuracy_before": before[key], "accuracy_after": after[key], "steps": cfg.steps,
            "max_sync_logprob_diff": self.max_sync_diff, "model": cfg.model,
            "final_policy": str(self.checkpointer.step_dir(cfg.steps) / POLICY_HF),
            "generator_engine": self.generators.kind,
            **{f"before_{k}": v for k, v in before.items()}, **{f"after_{k}": v for k, v in after.items()},
        }
        if self.environment is not None:
            summary["tool_call_rate"] = after[f"{key}_tool_call_rate"]
        return RunResult(self.run.path, summary, read_metrics(self.run.path / "metrics.jsonl"))

    def _loop(self, start_step: int, rows: list[Row], sampler: PromptSampler, producer: RolloutProducer | None,
              metrics: MetricsWriter, progress: Progress, before: dict[str, float]) -> None:
        cfg = self.cfg
        for step in range(start_step + 1, cfg.steps + 1):
            record = self._step(step, rows, sampler, producer)
            for hook in self.step_hooks:
                record.update(hook(self, step))
            if cfg.eval.every_steps and step % cfg.eval.every_steps == 0 and step != cfg.steps:
                record.update(self.evaluate())
            metrics.log(step, record)
            progress.update(step, reward=record["reward_mean"], acc=record["accuracy"], kl=record["kl"],
                            len=record["response_tokens_mean"], sync_diff=record.get("sync_max_logprob_diff", 0.0),
                            step_s=record["time/step"])
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                self.checkpointer.save(step, {"accuracy_before": before, "max_sync_diff": self.max_sync_diff,
                                              "probe": _batch_to_json(self.probe)}, self.policy, export_hf=True)
            if producer is not None:
                producer.publish(step)  # eval and checkpoint are done: the next rollouts may start

    def _producer(self, rows: list[Row], sampler: PromptSampler) -> RolloutProducer | None:
        """The rollout producer of asynchronous GRPO (rl/async_rollout.py), registered with
        the checkpointer so the rollouts generated but not yet trained resume with the run."""
        k = self.cfg.async_rollout.max_staleness
        if k is None:
            return None
        producer = RolloutProducer(lambda step: self._rollout(step, rows, sampler), 1, self.cfg.steps, k, version=0)
        self.checkpointer.register("async_rollouts", producer)
        return producer

    def _rollout(self, step: int, rows: list[Row], sampler: PromptSampler):
        """Draw the step's prompts, generate and score (generators and scorer only: in async
        mode this runs on the producer thread)."""
        cfg = self.cfg
        draw = lambda: [rows[i] for i in sampler.next_batch()]  # noqa: E731
        seed = cfg.seed * 1_000_003 + step * 1000
        if self.environment is not None:
            return collect_multiturn_rollout(self.generators, self.environment, self.tokenizer, draw, cfg.rollout,
                                             cfg.environment, cfg.generator.max_model_len,
                                             cfg.reward.accuracy_reward, seed)
        return collect_rollout(self.generators, self.scorer, self.tokenizer, draw, cfg.rollout,
                               cfg.reward.accuracy_reward, seed=seed)

    def _step(self, step: int, rows: list[Row], sampler: PromptSampler,
              producer: RolloutProducer | None = None) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.perf_counter()
        if producer is None:
            rollout, record = self._rollout(step, rows, sampler), {}
        else:
            produced, waited = producer.get(step)
            rollout, record = produced.rollout, {"time/trainer_wait": waited}
        record.update({**rollout.metrics, **{f"time/{k}": v for k, v in rollout.timings.items()}})
        if not rollout.groups:
            if producer is not None:
                record["time/trainer_wait"] += producer.wait_idle(step)
            record.update({"kl": 0.0, "time/step": time.perf_counter() - t0, "skipped": 1})
            return record
        batch = rollout.to_batch(cfg.algorithm, cfg.rollout.overlong_masking)
        if producer is not None:
            record.update(_staleness(step, produced, len(batch)))
        t1 = time.perf_counter()
        if cfg.algorithm.old_logprobs == "trainer":
            batch.old_logprobs = self.policy.logprobs(batch)
            record["generator_trainer_logprob_diff"] = _max_diff(batch.old_logprobs, batch.generator_logprobs,
                                                                 batch.loss_masks)
        else:
            batch.old_logprobs = batch.generator_logprobs
        if cfg.algorithm.kl_coef > 0:
            batch.ref_logprobs = self.policy.logprobs(batch, model="reference")
        if cfg.async_rollout.mask_cap:
            record["async/masked_token_fraction"] = _mask_off_policy(batch, cfg.async_rollout.mask_cap)
        if cfg.algorithm.tis_cap is None:
            batch.generator_logprobs = []
        record["time/logprobs"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        train_stats = self._updates(batch)
        record["time/train"] = time.perf_counter() - t2
        record.update(train_stats)
        if self.probe is None and cfg.sync.parity_check:
            self.probe = probe_from(batch, cfg.sync.probe_sequences, cfg.generator.max_model_len)
        if producer is not None:  # weights move only while no generation is in flight
            record["time/trainer_wait"] += producer.wait_idle(step)
        t3 = time.perf_counter()
        report = sync_weights(self.policy, self.generators, cfg.sync.bucket_mb,
                              self.probe if cfg.sync.parity_check else None, cfg.sync.parity_tolerance)
        record["time/sync"] = time.perf_counter() - t3
        record.update({"sync_seconds": report.seconds, "sync_bytes": report.bytes, "sync_buckets": report.buckets})
        if report.max_logprob_diff is not None:
            record["sync_max_logprob_diff"] = report.max_logprob_diff
            self.max_sync_diff = max(self.max_sync_diff, report.max_logprob_diff)
        record["time/step"] = time.perf_counter() - t0
        return record

    def _updates(self, batch) -> dict[str, float]:
        """Split the rollout into `updates_per_rollout` mini-batches, one optimizer step each."""
        k = max(1, min(self.cfg.algorithm.updates_per_rollout, len(batch)))
        order = list(range(len(batch)))
        stats: dict[str, float] = {}
        for u in range(k):
            part = batch.select(order[u::k])
            s = self.policy.train(part, ClippedPolicyLoss.for_batch(self.loss_cfg, part.loss_masks))
            for key, v in s.items():
                stats[key] = stats.get(key, 0.0) + v / k
        return stats

    def shutdown(self) -> None:
        if self.environment is not None:
            self.environment.close()
        for group in ("generators", "policy"):
            if hasattr(self, group):
                getattr(self, group).shutdown()


def _staleness(step: int, produced: Produced, samples: int) -> dict[str, float]:
    """Per-sample policy versions of the rollout trained at `step` (against version step-1).
    Syncs happen only between rollouts, so every sample of a rollout has the same version."""
    versions = [produced.version] * samples
    stale = [step - 1 - v for v in versions]
    return {"async/policy_version": step - 1, "async/sample_version_min": min(versions),
            "async/sample_version_max": max(versions), "async/staleness_mean": sum(stale) / len(stale),
            "async/staleness_max": max(stale), "time/generator_wait": produced.generator_wait}


def _mask_off_policy(batch, cap: float) -> float:
    """Zero the loss mask of tokens whose pi_old / pi_generator ratio is outside [1/cap, cap];
    returns the fraction of loss tokens masked."""
    bound = math.log(cap)
    masked = total = 0
    for mask, old, gen in zip(batch.loss_masks, batch.old_logprobs, batch.generator_logprobs):
        for t, (o, g) in enumerate(zip(old, gen)):
            if mask[t]:
                total += 1
                if abs(o - g) > bound:
                    mask[t] = 0
                    masked += 1
    return masked / max(total, 1)


def _max_diff(a: list[list[float]], b: list[list[float]], masks: list[list[int]]) -> float:
    """Max |a - b| over the tokens that carry loss: an episode's environment tokens have no
    generator log-prob (a 0.0 placeholder, rl/environment.py), so they are left out."""
    return max((abs(x - y) for ra, rb, rm in zip(a, b, masks) for x, y, m in zip(ra, rb, rm) if m), default=0.0)


def _batch_to_json(batch) -> dict | None:
    return None if batch is None else {"sequences": batch.sequences, "prompt_lens": batch.prompt_lens}


def _batch_from_json(data: dict):
    from rl.batch import RolloutBatch

    return RolloutBatch(data["sequences"], data["prompt_lens"])


def load_task_rows(path: str, on_error: str) -> list[Row]:
    from core.data.loading import load_rows

    return load_rows(path, on_error).rows


def synthetic_rows(n: int, seed: int, levels: list[int], modes: list[str], split: str) -> list[Row]:
    from core.data.synth import math_rows

    per_mode = math_rows(n, seed, tuple(modes), with_response=False, levels=tuple(levels), split=split)
    return [validate_row(r, r["id"]) for r in per_mode]
