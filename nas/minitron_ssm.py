"""Minitron-SSM (arXiv 2504.11409) on a NemotronH hybrid, stage by stage, into one run dir:

parent -> activation importance (nas.ssm_importance) -> depth scores (logit NMSE) ->
candidate children under a parameter budget (group-aware width + depth, nas.nemotron_h)
ranked by KL to the parent before distillation -> with a latency budget (`min_speedup`)
the best of them served in vLLM next to the parent to confirm it (or, with
`confirm_candidates: 0`, those predicted too slow by nas.serving_cost dropped) -> short
logit KD of the best few -> full
KD of the winner -> a random-pruned child of the same shape with the same KD -> MiniPuzzle
layer search (nas.minipuzzle) -> served comparison in vLLM (accuracy, prefill and decode).
"""
from __future__ import annotations

import itertools
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from core.paths import reforge_home, runs_root
from core.run_dir import RunDir
from nas.config import MinitronSSMConfig
from nas.nemotron_h import PruneSpec, child_config, parameter_count, prune
from nas.serving_cost import ServingCostModel
from nas.ssm_importance import kept_indices, layers_to_drop


def _log(msg: str) -> None:
    print(msg, flush=True)


def build_hybrid_parent(out_dir: str | Path, preset: str, steps: int, lr: float, batch_size: int, seed: int,
                        train_rows: int = 4000) -> Path:
    """The tiny NemotronH parent trained on synthetic math by nas.parent's response-only
    loop; cached by directory."""
    from core.checkpoint import load_hf, save_hf
    from core.tiny_hybrid import build_tiny_hybrid
    from nas.parent import ParentTraining, train_parent

    out = Path(out_dir)
    if (out / "config.json").exists():
        return out
    init = build_tiny_hybrid(out.with_name(out.name + ".init"), preset, seed=seed)
    model, tok = load_hf(init)
    train_parent(model, tok, ParentTraining(steps=steps, lr=lr, batch_size=batch_size, n_train=train_rows,
                                                 seed=seed))
    save_hf(model, tok, out.with_name(out.name + ".tmp"))
    shutil.rmtree(init, ignore_errors=True)
    return Path(shutil.move(str(out.with_name(out.name + ".tmp")), str(out)))


def importance_and_scores(parent, tok, c: MinitronSSMConfig):
    """Activation importance on the calibration problems and depth scores (logit NMSE) on the
    scoring problems, with the scoring batch: what every pruning of this parent starts from."""
    from nas.data import HELDOUT_SEED, TRAIN_SEED, math_batch
    from nas.ssm_importance import collect_importance, layer_removal_scores

    imp = collect_importance(parent, [math_batch(tok, c.calib_samples, TRAIN_SEED + 1)])
    score = math_batch(tok, c.score_samples, HELDOUT_SEED + 1)
    imp.layers = layer_removal_scores(parent, score)
    return imp, score


@torch.no_grad()
def log_probs(model, batch) -> torch.Tensor:
    """The model's next-token log-probabilities on a token batch (the KL reference)."""
    return F.log_softmax(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               use_cache=False).logits.float(), -1)


@torch.no_grad()
def kl_to_parent(model, parent_logp: torch.Tensor, batch) -> float:
    """KL(parent || model) per real token."""
    logq = log_probs(model, batch)
    return float((parent_logp.exp() * (parent_logp - logq)).sum(-1)[batch.attention_mask.bool()].mean())


def candidate_specs(cfg, depth_scores: dict[int, float], c: MinitronSSMConfig) -> list[tuple[PruneSpec, int]]:
    """Every grid point whose child lies in [min_param_ratio, param_ratio] x the parent."""
    parent = parameter_count(cfg)
    out = []
    for h, mh, hd, f, d in itertools.product(c.hidden_sizes, c.mamba_heads, c.mamba_head_dims, c.ffn_sizes,
                                             c.layers_dropped):
        spec = PruneSpec(h, mh, hd, f, layers_to_drop(cfg, depth_scores, d)).resolve(cfg)
        n = parameter_count(child_config(cfg, spec))
        if c.min_param_ratio * parent <= n <= c.param_ratio * parent:
            out.append((spec, n))
    if not out:
        raise ValueError(f"no candidate between {c.min_param_ratio} and {c.param_ratio} of the parent's "
                         f"{parent:,} parameters: widen hidden_sizes / mamba_heads / ffn_sizes / layers_dropped")
    return out


def random_kept(cfg, spec: PruneSpec, seed: int):
    """Random importance, and random blocks dropped with as many of each type as `spec`
    drops: the baseline with the same shape and parameter count."""
    from nas.ssm_importance import random_importance

    g = torch.Generator().manual_seed(seed)
    types = cfg.layers_block_type
    drop = []
    for kind in dict.fromkeys(types[i] for i in spec.drop_layers):
        pool = [i for i, t in enumerate(types) if t == kind]
        n = sum(types[i] == kind for i in spec.drop_layers)
        drop += [pool[j] for j in torch.randperm(len(pool), generator=g)[:n].tolist()]
    spec = PruneSpec(spec.hidden_size, spec.mamba_num_heads, spec.mamba_head_dim, spec.intermediate_size,
                     tuple(sorted(drop)))
    return spec, kept_indices(cfg, random_importance(cfg, seed), spec)


def serving_speed(parent: dict, child: dict, s, clock: str) -> dict:
    """Decode and prefill tokens/s of parent and child from the fastest prefill-only and full
    calls (nas.costs), by the wall clock or by the serving process's CPU time ("cpu": what a
    queue for the cores on a shared machine does not inflate)."""
    sfx = "_cpu_ms" if clock == "cpu" else "_ms"

    def rates(t: dict) -> tuple[float, float]:
        pre, full = t["prefill" + sfx], t["full" + sfx]
        step = (full - pre) / s.decode_tokens
        return s.batch_size * s.prompt_len / (pre / 1e3), s.batch_size / (step / 1e3) if step > 0 else float("nan")

    (pp, pd), (cp, cd) = rates(parent), rates(child)
    return {"parent_tokens_per_s": round(pd, 1), "child_tokens_per_s": round(cd, 1), "speedup": round(cd / pd, 3),
            "parent_prefill_tokens_per_s": round(pp, 1), "child_prefill_tokens_per_s": round(cp, 1),
            "prefill_speedup": round(cp / pp, 3)}


@dataclass
class Ranked:
    spec: PruneSpec
    params: int
    kl_pruned: float  # before any distillation
    predicted_speedup: dict[str, float] | None = None  # nas.serving_cost, per phase
    measured_speedup: dict[str, float] | None = None  # served next to the parent (confirm_speedups)
    kl_short_kd: float | None = None

    def describe(self) -> str:
        pred = self.predicted_speedup
        return f"{self.params:,} params KL {self.kl_pruned:.3f}" + (
            f" (predicted decode {pred['decode']:.2f}x, prefill {pred['prefill']:.2f}x)" if pred else "")


def rank_candidates(parent, imp, candidates: list[tuple[PruneSpec, int]], parent_logp: torch.Tensor, batch,
                    cost: ServingCostModel | None = None, min_speedup: float = 0.0) -> list[Ranked]:
    """Candidates by KL to the parent before distillation, lowest first. With a latency
    budget (`min_speedup` > 0) a candidate whose predicted decode or prefill speedup over
    the parent is below it is dropped first, never pruned or scored."""
    if min_speedup > 0 and cost is None:
        raise ValueError("min_speedup > 0 needs a serving cost model (nas.serving_cost)")
    cfg = parent.config
    out, fastest = [], None
    for spec, n in candidates:
        pred = cost.speedup(child_config(cfg, spec)) if cost is not None else None
        if pred is not None and (fastest is None or min(pred.values()) > min(fastest.values())):
            fastest = pred
        if min_speedup > 0 and min(pred.values()) < min_speedup:
            continue
        child = prune(parent, spec, kept_indices(cfg, imp, spec))
        out.append(Ranked(spec, n, kl_to_parent(child, parent_logp, batch), pred))
    if not out:
        raise ValueError(
            f"min_speedup {min_speedup}: none of the {len(candidates)} candidates is predicted to serve that much "
            f"faster than the parent in both decode and prefill (the fastest: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in (fastest or {}).items())
            + "); lower min_speedup, or add smaller mamba_heads / ffn_sizes / hidden_sizes or larger layers_dropped")
    return sorted(out, key=lambda r: r.kl_pruned)


def serving_order(ranked: list[Ranked]) -> list[Ranked]:
    """The order finalists are served in: round-robin over the Mamba inner widths (heads x
    head dim), each width's candidates best KL first, widths in the order of their best KL.
    Decode speed follows the Mamba width (docs/nas.md), so slots go to every width in turn
    rather than all to the widths with the lowest KL, which serve slowest."""
    by_width: dict[int, list[Ranked]] = {}
    for r in ranked:
        by_width.setdefault(r.spec.mamba_num_heads * r.spec.mamba_head_dim, []).append(r)
    return [r for rank in itertools.zip_longest(*by_width.values()) for r in rank if r is not None]


def confirm_speedups(parent, parent_dir: Path, tok, imp, ranked: list[Ranked], min_speedup: float, want: int,
                     limit: int, settings, rounds: int, work: Path, margin: float = 0.0, log=_log) -> list[Ranked]:
    """The finalists' speedups measured, not predicted: candidates are pruned and served in
    vLLM next to the parent (one process, round-robin, so both see the same load) in
    `serving_order`, `want` at a time, until `want` of them reach `min_speedup` x (1 +
    `margin`) in decode and prefill or `limit` have been measured; returned best KL first.
    The margin covers what one engine process cannot see: the same model's speed ratio
    moved by up to 20 % between processes here."""
    from core.checkpoint import save_hf
    from nas.costs import measure_in_subprocess
    from nas.minipuzzle import phase_ms

    cfg, confirmed, measured, need = parent.config, [], [], min_speedup * (1 + margin)
    ranked = serving_order(ranked)
    while len(confirmed) < want and len(measured) < min(limit, len(ranked)):
        batch = ranked[len(measured):min(len(measured) + want, limit)]
        dirs = [parent_dir] + [save_hf(prune(parent, r.spec, kept_indices(cfg, imp, r.spec)), tok,
                                       work / f"candidate-{len(measured) + i}") for i, r in enumerate(batch)]
        (p_pre, p_dec), *timed = [phase_ms(t, "cpu", settings.decode_tokens)
                                  for t in measure_in_subprocess(dirs, settings, rounds)]
        for r, (pre, dec) in zip(batch, timed):
            r.measured_speedup = {"decode": p_dec / dec, "prefill": p_pre / pre}
            ok = min(r.measured_speedup.values()) >= need  # False for NaN (a stalled call)
            log(f"[minitron-ssm] measured {r.spec} (KL {r.kl_pruned:.3f}): decode {r.measured_speedup['decode']:.2f}x, "
                f"prefill {r.measured_speedup['prefill']:.2f}x{'' if ok else f' -- below {need:.2f}x'}")
            confirmed += [r] if ok else []
        measured += batch
        shutil.rmtree(work, ignore_errors=True)
    if not confirmed:
        raise ValueError(
            f"min_speedup {min_speedup} (x (1 + confirm_margin {margin}) = {need:.2f}x measured): none of the "
            f"{len(measured)} candidates served reaches it ("
            + "; ".join(f"{r.spec}: decode {r.measured_speedup['decode']:.2f}x, prefill "
                        f"{r.measured_speedup['prefill']:.2f}x" for r in measured)
            + "); lower min_speedup or confirm_margin, raise confirm_candidates, or add smaller widths / larger "
            "layers_dropped")
    return sorted(confirmed, key=lambda r: r.kl_pruned)[:want]


def run(c: MinitronSSMConfig) -> dict:
    from core.checkpoint import load_hf, save_hf
    from nas.costs import CostSettings, measure_in_subprocess
    from nas.data import TRAIN_SEED, math_batch
    from nas.gkd import GKDConfig, distill
    from nas.minipuzzle import build_library, drop_one_kl, measure_block_runtimes, parent_totals, search
    from nas.serving_cost import Anchor

    run_dir = RunDir.create(runs_root(), "minitron_ssm", c.run_dir)
    run_dir.save_config(c)
    root = run_dir.path
    torch.manual_seed(c.seed)
    if c.torch_threads:
        torch.set_num_threads(c.torch_threads)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal t
        timings[name] = round(time.perf_counter() - t, 2)
        _log(f"[minitron-ssm] {name} done in {timings[name]:.1f}s")
        t = time.perf_counter()

    parent_dir = Path(c.parent_dir) if c.parent_dir else build_hybrid_parent(
        reforge_home() / "nas" / f"{c.parent_preset}-s{c.parent_steps}-n{c.parent_train_rows}-seed{c.seed}",
        c.parent_preset, c.parent_steps, c.parent_lr, c.parent_batch_size, c.seed, c.parent_train_rows)
    parent, tok = load_hf(parent_dir)
    parent.eval()
    pcfg = parent.config
    parent_params = sum(p.numel() for p in parent.parameters())
    if parent_params != parameter_count(pcfg):
        raise AssertionError(f"parameter formula {parameter_count(pcfg)} != model {parent_params}")
    stage("parent")

    imp, score = importance_and_scores(parent, tok, c)
    (root / "depth_scores.json").write_text(json.dumps(
        {f"{i} {pcfg.layers_block_type[i]}": s for i, s in imp.layers.items()}, indent=2))
    stage("importance")

    settings = CostSettings(c.cost.batch_size, c.cost.prompt_len, c.cost.decode_tokens, c.cost.repeats, c.cost.dtype,
                            c.cost.cpu_threads)
    cost_work = root / "serving_cost_models"
    confirm = c.min_speedup > 0 and c.confirm_candidates > 0
    predict = c.min_speedup > 0 and not confirm  # served, not predicted, when the finalists are confirmed
    parent_runtimes = measure_block_runtimes(parent, tok, cost_work / "parent", settings, c.cost.rounds, log=_log) \
        if predict or c.minipuzzle else None
    cost = None
    if predict:  # the second anchor: the smallest grid widths, at full depth
        small_spec = PruneSpec(min(c.hidden_sizes), min(c.mamba_heads), min(c.mamba_head_dims),
                               min(c.ffn_sizes)).resolve(pcfg)
        small = prune(parent, small_spec, kept_indices(pcfg, imp, small_spec))
        cost = ServingCostModel(Anchor(pcfg, parent_runtimes), Anchor(small.config, measure_block_runtimes(
            small, tok, cost_work / "small", settings, c.cost.rounds, log=_log)))
        (root / "serving_cost_model.json").write_text(json.dumps(cost.to_dict(), indent=2))
        del small
    shutil.rmtree(cost_work, ignore_errors=True)
    stage("serving_cost")

    parent_logp = log_probs(parent, score)
    candidates = candidate_specs(pcfg, imp.layers, c)
    ranked = rank_candidates(parent, imp, candidates, parent_logp, score, cost, c.min_speedup if predict else 0.0)
    _log(f"[minitron-ssm] {len(candidates)} candidates"
         + (f", {len(ranked)} predicted at least {c.min_speedup}x faster" if predict else "")
         + "; best before KD: " + ", ".join(r.describe() for r in ranked[:c.top_candidates]))
    within_budget = len(ranked) if predict else None
    if confirm:
        ranked = confirm_speedups(parent, parent_dir, tok, imp, ranked, c.min_speedup, c.top_candidates,
                                  c.confirm_candidates, settings, c.served_rounds, root / "confirm_speed",
                                  c.confirm_margin)
    stage("candidates")

    kd_data = math_batch(tok, c.kd_samples, TRAIN_SEED + 2)
    kd = lambda steps, seed: GKDConfig(steps=steps, batch_size=c.kd_batch_size, lr=c.kd_lr,  # noqa: E731
                                       cosine_weight=0.0, kl_weight=1.0, seed=seed)
    short = []
    for r in ranked[:c.top_candidates]:
        child = prune(parent, r.spec, kept_indices(pcfg, imp, r.spec))
        distill(child, parent, kd_data, kd(c.short_kd_steps, c.seed), log=lambda m: None)
        r.kl_short_kd = kl_to_parent(child, parent_logp, score)
        short.append((r.kl_short_kd, r, child))
    best_kl, best, child = min(short, key=lambda s: s[0])
    _log(f"[minitron-ssm] chosen {best.spec} ({best.params:,} params): KL {best.kl_pruned:.3f} pruned, "
         f"{best_kl:.3f} after {c.short_kd_steps} KD steps")
    stage("short_kd")

    rest = c.kd_steps - c.short_kd_steps
    history = distill(child, parent, kd_data, kd(rest, c.seed + 1), log=_log) if rest > 0 else []
    child_kl = kl_to_parent(child, parent_logp, score)
    child_dir = save_hf(child, tok, root / "child")
    stage("kd")

    served_dirs = {"parent": parent_dir, "child": child_dir}
    summary_extra: dict = {}
    if c.random_baseline:
        rspec, rkept = random_kept(pcfg, best.spec, c.seed + 7)
        rchild = prune(parent, rspec, rkept)
        r_kl0 = kl_to_parent(rchild, parent_logp, score)
        distill(rchild, parent, kd_data, kd(c.kd_steps, c.seed), log=_log)
        served_dirs["random"] = save_hf(rchild, tok, root / "random_child")
        summary_extra.update(random_kl_pruned=round(r_kl0, 4), random_kl_after_kd=round(
            kl_to_parent(rchild, parent_logp, score), 4), random_drop_layers=list(rspec.drop_layers))
        stage("random_baseline")

    if c.minipuzzle:
        kl_drop = drop_one_kl(parent, score)
        lib = build_library(pcfg, kl_drop, parent_runtimes.decode_ms, settings.batch_size,
                            settings.prompt_len + settings.decode_tokens)
        lib.save(root / "minipuzzle_library.json")
        budget = c.minipuzzle_memory_ratio * parent_totals(lib)["memory_mib"]
        choice = search(lib, max_memory_mib=budget)
        summary_extra.update(minipuzzle_memory_budget_mib=round(budget, 3),
                             minipuzzle_drop_layers=list(choice.drop_layers),
                             minipuzzle_predicted_runtime_ratio=round(
                                 choice.totals.get("runtime_ms", float("nan")) / parent_totals(lib)["runtime_ms"], 4)
                             if "runtime_ms" in choice.totals else None,
                             minipuzzle_kl_sum=round(choice.objective, 4), minipuzzle_optimal=choice.optimal)
        _log(f"[minipuzzle] memory budget {budget:.2f} MiB -> drop layers {list(choice.drop_layers)} "
             f"({[pcfg.layers_block_type[i] for i in choice.drop_layers]}), summed KL {choice.objective:.4f}")
        stage("minipuzzle")

    served = dict(zip(served_dirs, measure_in_subprocess(list(served_dirs.values()), settings,
                                                          rounds=c.served_rounds, accuracy_samples=c.eval_samples)))
    stage("served_eval")

    n = c.eval_samples
    se = lambda p: round(math.sqrt(max(p * (1 - p), 0.0) / n), 4)  # noqa: E731
    p, ch = served["parent"], served["child"]
    speed = {f"{k}_wall" if clock == "wall" else k: v for clock in ("cpu", "wall")
             for k, v in serving_speed(p, ch, settings, clock).items()}
    summary = {
        "parent_dir": str(parent_dir), "child_dir": str(child_dir),
        "parent_params": parent_params, "child_params": best.params,
        "param_ratio": round(best.params / parent_params, 4),
        "child_spec": {**asdict(best.spec), "drop_layers": list(best.spec.drop_layers)},
        "child_layers": child_config(pcfg, best.spec).layers_block_type,
        "parent_accuracy": p["accuracy"], "parent_accuracy_se": se(p["accuracy"]),
        "child_accuracy": ch["accuracy"], "child_accuracy_se": se(ch["accuracy"]),
        "accuracy_retention": round(ch["accuracy"] / p["accuracy"], 4) if p["accuracy"] else None,
        "random_prune_accuracy": served["random"]["accuracy"] if "random" in served else None,
        "random_prune_accuracy_se": se(served["random"]["accuracy"]) if "random" in served else None,
        "eval_samples": n,
        **speed, "serving_batch_size": settings.batch_size, "serving_cpu_threads": settings.cpu_threads,
        "candidates": len(candidates), "min_speedup": c.min_speedup, "candidates_within_min_speedup": within_budget,
        "candidates_confirmed_by_measurement": len(ranked) if confirm else None,
        "child_predicted_speedup": round(best.predicted_speedup["decode"], 3) if best.predicted_speedup else None,
        "child_predicted_prefill_speedup": round(best.predicted_speedup["prefill"], 3)
        if best.predicted_speedup else None,
        "child_measured_speedup_at_selection": {k: round(v, 3) for k, v in best.measured_speedup.items()}
        if best.measured_speedup else None,
        "child_kl_pruned": round(best.kl_pruned, 4),
        "child_kl_short_kd": round(best_kl, 4), "child_kl_after_kd": round(child_kl, 4),
        "kd_loss_first": history[0]["loss"] if history else None,
        "kd_loss_last": history[-1]["loss"] if history else None,
        "stage_seconds": timings, **summary_extra,
    }
    _log(f"params parent {parent_params:,} -> child {best.params:,} ({summary['param_ratio']}x)")
    _log(f"held-out accuracy ({n} problems, greedy): parent {p['accuracy']:.3f} +- {se(p['accuracy'])}, child "
         f"{ch['accuracy']:.3f} +- {se(ch['accuracy'])}, retention {summary['accuracy_retention']}; random-pruned "
         f"{summary['random_prune_accuracy']}")
    _log(f"vLLM decode (batch {settings.batch_size}, CPU time): parent {summary['parent_tokens_per_s']} tok/s, child "
         f"{summary['child_tokens_per_s']} tok/s ({summary['speedup']}x); prefill {summary['prefill_speedup']}x")
    run_dir.write_summary(summary)
    run_dir.finish()
    return summary
