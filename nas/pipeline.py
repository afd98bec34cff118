"""The whole Puzzle run, stage by stage, writing everything into one run directory:
parent -> calibration -> BLD -> replace-1-block scores -> measured costs -> block library
-> MIP -> child -> global KD -> served comparison (vLLM decode speed, held-out accuracy)."""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from core.paths import reforge_home, runs_root
from core.run_dir import RunDir
from nas.config import PuzzleConfig

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def _log(msg: str) -> None:
    print(msg, flush=True)


def prepare_parent(cfg: PuzzleConfig, out_dir: Path):
    """The parent as a nemotron-nas checkpoint in the run dir (identity conversion)."""
    from core.checkpoint import load_hf
    from nas.format import llama_to_decilm, load_decilm, save_decilm
    from nas.parent import ParentTraining, build_parent

    src = Path(cfg.parent_dir) if cfg.parent_dir else build_parent(
        reforge_home() / "nas" / f"parent-s{cfg.parent_steps}-seed{cfg.seed}",
        ParentTraining(steps=cfg.parent_steps, seed=cfg.seed))
    model_type = json.loads((src / "config.json").read_text()).get("model_type")
    if model_type == "nemotron-nas":
        from transformers import AutoTokenizer

        return load_decilm(src), AutoTokenizer.from_pretrained(str(src), trust_remote_code=True), src
    llama, tok = load_hf(src)
    parent = llama_to_decilm(llama)
    save_decilm(parent, tok, out_dir)
    return parent, tok, out_dir


def layer_table(cfg, variants, lib, scores_key: str) -> str:
    rows = [f"{'layer':>5}  {'attention':<12} {'ffn':<12} {'params':>9} {'decode ms':>9} {scores_key:>9}"]
    for i, v in enumerate(variants):
        e = lib.layers[i][v.key(cfg)]
        attn = f"gqa kv{v.attention.kv_heads}" if v.attention.kind == "gqa" else v.attention.kind
        ffn = f"ffn {v.ffn.width}" if v.ffn.kind == "swiglu" else v.ffn.kind
        rows.append(f"{i:>5}  {attn:<12} {ffn:<12} {int(e.stats['num_params']):>9} "
                    f"{e.stats['runtime_ms']:>9.3f} {e.metrics.get(scores_key, float('nan')):>9.4f}")
    return "\n".join(rows)


def run(cfg: PuzzleConfig) -> dict:
    from nas.activations import calibrate
    from nas.assemble import SubblockStore, assemble_child
    from nas.bld import BLDConfig, plan_jobs, run_bld
    from nas.costs import CostSettings, measure_in_subprocess, measure_subblocks
    from nas.data import HELDOUT_SEED, TRAIN_SEED, math_batch
    from nas.format import save_decilm
    from nas.fusion import fuse_all_runs
    from nas.gkd import GKDConfig, distill
    from nas.scoring import reference, score_all
    from nas.search import Budget, build_library, predicted_decode_ms, search
    from nas.space import SearchSpace, parent_variant

    run_dir = RunDir.create(runs_root(), "puzzle_nas", cfg.run_dir)
    run_dir.save_config(cfg)
    root = run_dir.path
    torch.manual_seed(cfg.seed)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal t
        timings[name] = round(time.perf_counter() - t, 2)
        _log(f"[puzzle] {name} done in {timings[name]:.1f}s")
        t = time.perf_counter()

    parent, tok, parent_dir = prepare_parent(cfg, root / "parent")
    pcfg = parent.config
    stage("parent")

    calib_path = root / "calibration.pt"
    calib = calibrate(parent, math_batch(tok, cfg.calib_samples, TRAIN_SEED + 1), calib_path)
    space = SearchSpace.from_parent(pcfg, tuple(cfg.ffn_fractions), linear=cfg.linear_variants)
    stage("calibration")

    jobs = plan_jobs(pcfg, space, coupled=cfg.bld_coupled)
    bld = run_bld(str(parent_dir), str(calib_path), str(root / "bld"), jobs,
                  BLDConfig(steps=cfg.bld_steps, lr=cfg.bld_lr, coupled=cfg.bld_coupled, seed=cfg.seed),
                  use_ray=cfg.use_ray)
    bld_records = [{"layer": r.job.layer, "part": r.job.part, "path": r.path, "nmse_init": r.loss_init,
                    "nmse_final": r.loss_final, "skipped": r.skipped} for r in bld]
    (root / "bld_results.json").write_text(json.dumps(bld_records, indent=2))
    stage("bld")

    store = SubblockStore(parent, root / "bld", calib["contributions"])
    ref = reference(parent, math_batch(tok, cfg.score_samples, HELDOUT_SEED + 1))
    scores = score_all(parent, store, ref, space, log=_log)
    stage("scoring")

    c = cfg.cost
    settings = CostSettings(c.batch_size, c.prompt_len, c.decode_tokens, c.repeats, c.dtype)
    costs = measure_subblocks(pcfg, tok, space, root / "cost_models", settings, rounds=c.rounds, log=_log)
    shutil.rmtree(root / "cost_models", ignore_errors=True)
    lib = build_library(pcfg, space, costs, scores, DTYPE_BYTES[c.dtype])
    lib.save(root / "block_library.json")
    stage("costs")

    parent_variants = [parent_variant(pcfg, i) for i in range(pcfg.num_hidden_layers)]
    parent_pred = predicted_decode_ms(lib, parent_variants, pcfg)
    b = cfg.budget
    decode_budget = b.decode_ms if b.decode_ms is not None else (parent_pred / b.speedup if b.speedup else None)
    budget = Budget(decode_budget, b.prefill_ms, b.memory_mib, b.num_params, b.throughput_tokens_per_s)
    result = search(lib, budget, list(cfg.batch_sizes), b.seq_len, cfg.num_solutions, cfg.diversity, cfg.metric)
    variants = result.variants[0]
    child_pred = predicted_decode_ms(lib, variants, pcfg)
    _log(layer_table(pcfg, variants, lib, cfg.metric))
    stage("mip")

    child = assemble_child(store, variants)
    gkd_cfg = GKDConfig(steps=cfg.gkd_steps, lr=cfg.gkd_lr, seed=cfg.seed)
    history = distill(child, parent, math_batch(tok, cfg.gkd_samples, TRAIN_SEED + 2), gkd_cfg, log=_log)
    child_dir = save_decilm(child, tok, root / "child")
    stage("gkd")

    probe = math_batch(tok, 8, HELDOUT_SEED + 2)
    fused, reports = fuse_all_runs(child, probe.input_ids, probe.attention_mask)
    fusion = [dataclasses.asdict(rep) for rep in reports]
    fused_dir = save_decilm(fused, tok, root / "child_fused") if reports else None
    stage("ffn_fusion")

    served = measure_in_subprocess([parent_dir, child_dir] + ([fused_dir] if fused_dir else []), settings,
                                   rounds=cfg.served_rounds, accuracy_samples=cfg.eval_samples)
    stage("served_eval")

    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    p_acc, c_acc = served[0]["accuracy"], served[1]["accuracy"]
    summary = {
        "parent_dir": str(parent_dir), "child_dir": str(child_dir),
        "parent_params": n_params(parent), "child_params": n_params(child),
        "parent_decode_tokens_per_s": round(served[0]["decode_tokens_per_s"], 1),
        "child_decode_tokens_per_s": round(served[1]["decode_tokens_per_s"], 1),
        "speedup": round(served[1]["decode_tokens_per_s"] / served[0]["decode_tokens_per_s"], 3),
        "parent_prefill_ms": round(served[0]["prefill_ms"], 2), "child_prefill_ms": round(served[1]["prefill_ms"], 2),
        "predicted_speedup": round(parent_pred / child_pred, 3),
        "decode_budget_ms": decode_budget, "batch_size": result.batch_size,
        "parent_accuracy": p_acc, "child_accuracy": c_acc,
        "accuracy_retention": round(c_acc / p_acc, 4) if p_acc else None,
        "mip_seconds": round(result.seconds, 4), "mip_objective": result.solutions[0].objective,
        "bld_jobs": len(bld), "bld_nmse_init_mean": sum(r.loss_init for r in bld) / max(len(bld), 1),
        "bld_nmse_final_mean": sum(r.loss_final for r in bld) / max(len(bld), 1),
        "gkd_loss_first": history[0]["loss"] if history else None,
        "gkd_loss_last": history[-1]["loss"] if history else None,
        "ffn_fusion": fusion, "fused_child_dir": str(fused_dir) if fused_dir else None,
        "fused_child_accuracy": served[2]["accuracy"] if fused_dir else None,
        "fused_child_decode_tokens_per_s": round(served[2]["decode_tokens_per_s"], 1) if fused_dir else None,
        "stage_seconds": timings,
        "architecture": [v.key(pcfg) for v in variants],
    }
    _log(f"params parent {summary['parent_params']:,} -> child {summary['child_params']:,}")
    _log(f"vLLM-CPU decode (batch {c.batch_size}): parent {summary['parent_decode_tokens_per_s']} tok/s, "
         f"child {summary['child_decode_tokens_per_s']} tok/s, speedup {summary['speedup']}x "
         f"(predicted {summary['predicted_speedup']}x)")
    _log(f"held-out accuracy ({cfg.eval_samples} math problems, greedy): parent {p_acc:.3f}, child {c_acc:.3f}, "
         f"retention {summary['accuracy_retention']}")
    run_dir.write_summary(summary)
    run_dir.finish()
    return summary
