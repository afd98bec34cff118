"""One SFT run end to end: data -> mix -> pack -> train (resumable) -> merged HF checkpoint ->
held-out accuracy in both modes -> summary.json. The recipe and `default_policy` call it."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch

from core.chat import ChatSettings, chat_settings, set_chat_settings
from core.checkpoint import load_hf, save_hf
from core.data.loading import load_rows
from core.data.synth import code_rows, math_rows
from core.metrics import MetricsWriter, Progress
from core.paths import reforge_home, runs_root
from core.run_dir import RunDir
from core.seed import seed_everything
from core.tiny import build_tiny_model
from core.tokenization import stop_token_ids
from core.training import build_backend, dist
from sft.adapters import apply_adapter, merge_adapter, num_trainable
from sft.batching import BatchPlan
from sft.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from sft.config import SFTConfig
from sft.mixing import mix, prompt_key
from sft.packing import encode_rows, one_document_per_row, pack_documents
from sft.tool_traces import tool_math_rows
from sft.trainer import StepStats, fit


def log0(msg: str) -> None:
    if dist.rank() == 0:
        print(msg, flush=True)


def base_model_dir(cfg: SFTConfig) -> Path:
    """The configured base, or the embedded model for `preset`, built once and cached."""
    if cfg.model.base:
        base = Path(cfg.model.base)
        return base if base.is_absolute() or base.exists() else reforge_home() / base
    cached = reforge_home() / f"base-{cfg.model.preset}"
    if not (cached / "config.json").exists() and dist.rank() == 0:
        tmp = cached.with_name(cached.name + f".tmp{time.time_ns()}")
        build_tiny_model(tmp, preset=cfg.model.preset)
        tmp.replace(cached) if not cached.exists() else shutil.rmtree(tmp)
    return cached


def train_rows(cfg: SFTConfig, settings: ChatSettings | None = None) -> list[dict]:
    """The configured files, or the synthetic set written with the checkpoint's think tags."""
    d = cfg.data
    if d.train_files:
        rows = []
        for f in d.train_files:
            report = load_rows(f, on_error=d.on_error, layout=d.layout)
            log0(report.summary(f))
            rows += [r.to_dict() for r in report.rows]
        return rows
    return (math_rows(d.synthetic_math, d.seed, levels=tuple(d.math_levels), settings=settings)
            + code_rows(d.synthetic_code, d.seed, settings=settings)
            + tool_math_rows(d.synthetic_tool_math, d.seed, ("on", "off"), tuple(d.math_levels), settings=settings,
                             tools_shown=d.tools_shown))


def heldout_rows(cfg: SFTConfig, train: list[dict]) -> list[dict]:
    """Prompt-only rows in both modes from another seed, minus prompts seen in training."""
    seen = {prompt_key(r) for r in train}
    e = cfg.eval
    rows = (math_rows(e.math_per_mode, e.seed, with_response=False, levels=tuple(cfg.data.math_levels),
                      split="test")
            + code_rows(e.code_per_mode, e.seed, with_response=False, split="test"))  # small: one chunk
    return [r for r in rows if prompt_key(r) not in seen]


def _stop_at_end_of_turn(model, tok, base: Path) -> None:
    """Generation stops where the template ends an assistant turn: its end-of-turn token
    joins the base's eos ids in the exported generation config (vLLM and HF read them)."""
    stop = stop_token_ids(tok, base)
    eos = model.generation_config.eos_token_id
    if set(stop) != set(eos if isinstance(eos, list) else [eos]):
        model.generation_config.eos_token_id = stop


def publish(src: Path, dest: Path) -> Path:
    """Replace dest with a copy of src (copy aside, then rename, so readers never see half)."""
    tmp = dest.with_name(dest.name + f".tmp{time.time_ns()}")
    shutil.copytree(src, tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.replace(dest)
    return dest


def _measure(cfg: SFTConfig, checkpoint: Path, rows: list[dict]) -> dict[str, Any]:
    from sft.heldout import evaluate

    from core.engines.factory import EngineSettings, make_engine

    engine = make_engine(str(checkpoint), EngineSettings(engine=cfg.eval.engine))
    _, tok = load_hf(checkpoint)
    result = evaluate(engine, tok, rows, cfg.eval.max_tokens)
    if hasattr(engine, "shutdown"):
        engine.shutdown()
    return result.accuracy


def run_sft(cfg: SFTConfig) -> dict[str, Any]:
    started = time.time()
    seed_everything(cfg.train.seed)
    if cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    dist.init_from_env()
    rank0 = dist.rank() == 0
    run = RunDir.create(runs_root(), cfg.name, cfg.run_dir or None) if rank0 else None
    if dist.is_distributed():  # every rank writes its resume files into rank 0's run directory
        shared = [str(run.path) if rank0 else None]
        torch.distributed.broadcast_object_list(shared, src=0)
        run = run or RunDir(shared[0])
    if rank0:
        run.save_config(cfg)
    base = base_model_dir(cfg)
    if dist.is_distributed():
        torch.distributed.barrier()  # rank 0 may be building the cached base model
    model, tok = load_hf(base)
    if cfg.model.chat is not None:
        set_chat_settings(tok, cfg.model.chat)
    model.config._attn_implementation = cfg.model.attn_implementation

    rows = train_rows(cfg, chat_settings(tok))
    mixed, counts = mix(rows, cfg.data.mix)
    packed = pack_documents(encode_rows(tok, mixed), cfg.packing.pack_len, tok.pad_token_id,
                            one_per_row=one_document_per_row(model.config))
    world = dist.world_size()
    plan = BatchPlan(len(packed), cfg.packing.rows_per_micro, cfg.train.grad_accum, world, cfg.data.mix.seed)
    if cfg.epochs > 0:
        cfg.train.total_steps = max(1, round(cfg.epochs * plan.steps_per_epoch))
    log0(f"data: {len(mixed)} samples {counts} -> {len(packed)} packed rows of {cfg.packing.pack_len}; "
         f"{plan.steps_per_epoch} steps/epoch, {cfg.train.total_steps} steps")

    model = apply_adapter(model, cfg.adapter)
    log0(f"trainable parameters: {num_trainable(model):,} ({cfg.adapter.method})")
    backend = build_backend(cfg.train, model)
    ckpt_root = run.path / "checkpoints"
    start = 0
    if cfg.resume:
        path = latest_checkpoint(ckpt_root) if cfg.resume == "auto" else Path(cfg.resume)
        if path is not None:
            start = load_checkpoint(path, backend)
            log0(f"resumed from {path} at step {start}")

    metrics = MetricsWriter(run.path, cfg.logging) if rank0 else None
    progress = Progress(cfg.name, cfg.train.total_steps)

    def on_step(s: StepStats) -> None:
        tok_s = s.tokens * world / max(s.seconds, 1e-9)
        if rank0:
            metrics.log(s.step, {"loss": s.loss, "lr": s.lr, "grad_norm": s.grad_norm, "tokens_per_s": tok_s,
                                 "loss_tokens": s.loss_tokens})
            progress.update(s.step, loss=s.loss, lr=s.lr, grad_norm=s.grad_norm, tok_s=round(tok_s))

    t_train = time.time()
    history = fit(backend, packed, plan, cfg.train.total_steps, start_step=start, on_step=on_step,
                  checkpoint_dir=ckpt_root, checkpoint_every=cfg.checkpoint_every)
    train_seconds = time.time() - t_train
    if cfg.checkpoint_every and cfg.train.total_steps % cfg.checkpoint_every:
        save_checkpoint(ckpt_root, backend, cfg.train.total_steps)

    full = backend.full_state_dict()
    summary: dict[str, Any] = {}
    if rank0:
        metrics.close()
        export, _ = load_hf(base)
        export = apply_adapter(export, cfg.adapter)
        export.load_state_dict(full)
        final = merge_adapter(export, cfg.adapter)
        _stop_at_end_of_turn(final, tok, base)
        checkpoint = save_hf(final, tok, run.path / "checkpoint")
        tokens = sum(s.tokens for s in history) * world
        summary = {"checkpoint": str(checkpoint), "base": str(base), "steps": cfg.train.total_steps,
                   "final_loss": history[-1].loss if history else None,
                   "train_seconds": round(train_seconds, 2),
                   "train_tokens_per_s": round(tokens / max(train_seconds, 1e-9), 1),
                   "samples": len(mixed), "mix_counts": counts}
        if cfg.eval.enabled:
            t_eval = time.time()
            summary.update(_measure(cfg, checkpoint, heldout_rows(cfg, rows)))
            summary["eval_seconds"] = round(time.time() - t_eval, 2)
        if cfg.publish_to:
            dest = Path(cfg.publish_to)
            dest = dest if dest.is_absolute() else reforge_home() / dest
            summary["published"] = str(publish(checkpoint, dest))
        run.write_summary(summary)
        summary["seconds_total"] = round(time.time() - started, 2)
        summary["run_dir"] = str(run.path)
    return summary
