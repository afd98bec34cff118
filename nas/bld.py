"""Blockwise local distillation (METHODS §2.3): train one child block on the parent's
input activations to reproduce the parent block's output.

Loss: normalised MSE, MSE(o_p, o_c) / MSE(o_p, 0), taken on the block's contribution to
the residual stream (output minus input). The input is shared by parent and child, so this
has the paper's gradient up to a constant per batch, and its value reads directly: 1.0 is
as good as a no-op block, 0.0 is the parent.

Decoupled BLD trains [a, f_parent] (FFN frozen) or [a_parent, f] (attention frozen);
coupled BLD trains [a, f] together. Every (layer, variant) is an independent job
(`run_bld` fans them out as Ray tasks) and writes one safetensors file; a job whose file
exists is skipped, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from nas.space import NO_OP, BlockVariant, parent_variant


@dataclass(frozen=True)
class BLDConfig:
    steps: int = 60
    lr: float = 1e-3
    batch_size: int = 16
    coupled: bool = False
    seed: int = 0


@dataclass(frozen=True)
class BLDJob:
    layer: int
    variant: BlockVariant
    part: str  # "attn" | "ffn" (decoupled) | "block" (coupled)


@dataclass
class BLDResult:
    job: BLDJob
    path: str
    loss_init: float
    loss_final: float
    skipped: bool = False


def normalized_mse(parent_delta: torch.Tensor, child_delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    keep = mask.bool()
    p, c = parent_delta[keep], child_delta[keep]
    return (p - c).pow(2).mean() / p.pow(2).mean().clamp_min(1e-12)


def plan_jobs(parent_cfg, space, coupled: bool = False) -> list[BLDJob]:
    """Decoupled: every non-parent, non-no-op sub-block once per layer; coupled: every block
    that differs from the parent and is not pure no-op."""
    jobs = []
    for i in range(parent_cfg.num_hidden_layers):
        par = parent_variant(parent_cfg, i)
        if coupled:
            jobs += [BLDJob(i, v, "block") for v in space.block_variants(i)
                     if v != par and not (v.attention.kind == NO_OP and v.ffn.kind == NO_OP)]
            continue
        jobs += [BLDJob(i, BlockVariant(a, par.ffn), "attn") for a in space.attention_variants(i)
                 if a != par.attention and a.kind != NO_OP]
        jobs += [BLDJob(i, BlockVariant(par.attention, f), "ffn") for f in space.ffn_variants()
                 if f != par.ffn and f.kind != NO_OP]
    return jobs


def output_path(out_dir: Path, job: BLDJob) -> Path:
    from nas.assemble import variant_slug

    name = {"attn": f"attn-{variant_slug(job.variant.attention)}", "ffn": f"ffn-{variant_slug(job.variant.ffn)}",
            "block": f"block-{variant_slug(job.variant.attention)}-{variant_slug(job.variant.ffn)}"}[job.part]
    return out_dir / f"layer_{job.layer}" / f"{name}.safetensors"


def train_block(store, job: BLDJob, x_in: torch.Tensor, attention_mask: torch.Tensor, cfg: BLDConfig
                ) -> tuple[dict[str, torch.Tensor], float, float]:
    """Train one block; returns (trained weights of the trained part, loss before, loss after)."""
    from nas.activations import LayerContext

    torch.manual_seed(cfg.seed)
    parent = store.parent
    ctx = LayerContext.build(parent, attention_mask)
    parent_layer = parent.model.layers[job.layer]
    with torch.no_grad():
        target = parent_layer(x_in, ctx.cos, ctx.sin, ctx.mask) - x_in
    blk = store.build_layer(job.layer, job.variant)
    trainable = {"attn": ("input_layernorm.", "self_attn."), "ffn": ("post_attention_layernorm.", "mlp."),
                 "block": ("",)}[job.part]
    params = [p for n, p in blk.named_parameters() if n.startswith(trainable)]
    for n, p in blk.named_parameters():
        p.requires_grad_(n.startswith(trainable))
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)

    def loss_on(rows: slice) -> torch.Tensor:
        c = ctx.slice(rows)
        out = blk(x_in[rows], c.cos, c.sin, c.mask) - x_in[rows]
        return normalized_mse(target[rows], out, attention_mask[rows])

    everything = slice(0, x_in.shape[0])
    with torch.no_grad():
        loss_init = float(loss_on(everything))
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.steps):
        start = int(torch.randint(0, max(1, x_in.shape[0] - cfg.batch_size + 1), (1,), generator=g))
        loss = loss_on(slice(start, start + cfg.batch_size))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        loss_final = float(loss_on(everything))
    weights = {n: p.detach().clone().contiguous() for n, p in blk.state_dict().items() if n.startswith(trainable)}
    return weights, loss_init, loss_final


@functools.lru_cache(maxsize=2)
def _load_inputs(parent_dir: str, calib_path: str):
    """Parent and calibration once per worker process (Ray reuses workers across tasks)."""
    from nas.assemble import SubblockStore
    from nas.format import load_decilm

    calib = torch.load(calib_path)
    return SubblockStore(load_decilm(parent_dir), contributions=calib["contributions"]), calib


def run_job(parent_dir: str, calib_path: str, out_dir: str, job: BLDJob, cfg: BLDConfig) -> BLDResult:
    """One independent BLD job (what a Ray task runs): load, train, write atomically."""
    path = output_path(Path(out_dir), job)
    if path.exists():
        meta = load_file(str(path))
        return BLDResult(job, str(path), float(meta.get("__loss_init", torch.tensor(float("nan")))),
                         float(meta.get("__loss_final", torch.tensor(float("nan")))), skipped=True)
    torch.set_num_threads(1)
    store, calib = _load_inputs(parent_dir, calib_path)
    weights, l0, l1 = train_block(store, job, calib["layer_inputs"][job.layer], calib["attention_mask"], cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({**weights, "__loss_init": torch.tensor(l0), "__loss_final": torch.tensor(l1)}, str(tmp))
    os.replace(tmp, path)
    return BLDResult(job, str(path), l0, l1)


def run_bld(parent_dir: str, calib_path: str, out_dir: str, jobs: list[BLDJob], cfg: BLDConfig,
            use_ray: bool = True) -> list[BLDResult]:
    """All jobs as independent Ray tasks (one CPU each); in-process when use_ray is False.

    Without a connected Ray session this starts a private local cluster (never attaching to
    someone else's) and stops it afterwards."""
    done = [j for j in jobs if output_path(Path(out_dir), j).exists()]
    todo = [j for j in jobs if j not in done]
    results = {j: run_job(parent_dir, calib_path, out_dir, j, cfg) for j in done}  # reads losses only
    if todo and not use_ray:
        results.update({j: run_job(parent_dir, calib_path, out_dir, j, cfg) for j in todo})
    elif todo:
        import ray

        own = not ray.is_initialized()
        if own:
            repo = str(Path(__file__).resolve().parent.parent)
            ray.init(address="local", include_dashboard=False, log_to_driver=False, num_cpus=os.cpu_count(),
                     runtime_env={"env_vars": {"PYTHONPATH": repo}})
        try:
            task = ray.remote(num_cpus=1)(run_job)
            results.update(zip(todo, ray.get([task.remote(parent_dir, calib_path, out_dir, j, cfg) for j in todo])))
        finally:
            if own:
                ray.shutdown()
    return [results[j] for j in jobs]
