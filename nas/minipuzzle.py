"""MiniPuzzle (Nemotron-H 56B -> 47B): which blocks of a hybrid model to keep under a
memory / latency budget, as Puzzle's MIP (nas.mip) over per-layer {keep, drop} variants.

Per layer: `keep` costs the block's parameters, its decode-state memory (Mamba: conv and
SSM state per sequence; attention: KV cache per token) and its measured decode time; `drop`
costs nothing and scores the KL(parent || parent without the block) on held-out data
(replace-1-block scoring with the no-op block). The library is written in the public
Puzzle layout, so `reforge nas search` solves it too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from nas.library import BlockEntry, BlockLibrary
from nas.mip import Constraint, MIPProblem, solve
from nas.nemotron_h import ATTENTION, MAMBA, MLP, PruneSpec, block_parameter_count, fixed_parameter_count

MIB = 2 ** 20
TYPE_NAMES = {MAMBA: "mamba", ATTENTION: "attention", MLP: "ffn"}


def state_bytes(cfg, kind: str, batch_size: int, seq_len: int, dtype_bytes: int) -> int:
    """Decode-time state of one block for `batch_size` sequences of `seq_len` tokens."""
    if kind == MAMBA:
        inner = cfg.mamba_num_heads * cfg.mamba_head_dim
        conv = (inner + 2 * cfg.n_groups * cfg.ssm_state_size) * (cfg.conv_kernel - 1)
        ssm = inner * cfg.ssm_state_size
        return batch_size * (conv + ssm) * dtype_bytes
    if kind == ATTENTION:
        return batch_size * seq_len * 2 * cfg.num_key_value_heads * cfg.head_dim * dtype_bytes
    return 0


@torch.no_grad()
def drop_one_kl(model, batch) -> dict[int, float]:
    """KL(parent || parent without block i) per token on real positions, for every block."""
    layers = model.model.layers
    keep = batch.attention_mask.bool()
    ref = F.log_softmax(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                              use_cache=False).logits.float(), -1)
    out = {}
    try:
        for i in range(len(layers)):
            model.model.layers = torch.nn.ModuleList([b for j, b in enumerate(layers) if j != i])
            logq = F.log_softmax(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                       use_cache=False).logits.float(), -1)
            out[i] = float((ref.exp() * (ref - logq)).sum(-1)[keep].mean())
    finally:
        model.model.layers = layers
    return out


def build_library(cfg, kl: dict[int, float], runtime_ms: dict[str, float], batch_size: int, seq_len: int,
                  dtype_bytes: int = 4) -> BlockLibrary:
    """Per layer: `<type> = parent` and `<type> = no_op`, public Puzzle layout."""
    lib = BlockLibrary([], info={"batch_size": batch_size, "seq_len": seq_len, "dtype_bytes": dtype_bytes,
                                 "fixed_params": fixed_parameter_count(cfg)})
    for i, kind in enumerate(cfg.layers_block_type):
        name, params = TYPE_NAMES[kind], block_parameter_count(cfg, kind)
        state = state_bytes(cfg, kind, batch_size, seq_len, dtype_bytes)
        lib.add(i, f"{name} = parent (parent * 100%)", BlockEntry(None, {
            "num_params": params, "memory_mib": (params * dtype_bytes + state) / MIB,
            "state_memory_mib": state / MIB, "runtime_ms": runtime_ms[kind]}, {"kl_div": 0.0}))
        lib.add(i, f"{name} = no_op (parent * 0%)", BlockEntry(None, {
            "num_params": 0, "memory_mib": 0.0, "state_memory_mib": 0.0, "runtime_ms": 0.0}, {"kl_div": kl[i]}))
    return lib


@dataclass
class LayerChoice:
    drop_layers: tuple[int, ...]
    objective: float  # summed replace-1-block KL of the dropped blocks
    totals: dict[str, float]
    optimal: bool


def search(lib: BlockLibrary, max_memory_mib: float | None = None, max_runtime_ms: float | None = None,
           keep_attention: int = 1, time_limit_s: float = 60.0) -> LayerChoice:
    """Keep/drop per layer minimising the summed KL under the budgets; at least
    `keep_attention` attention blocks stay (a hybrid needs one for recall)."""
    keys = [list(layer) for layer in lib.layers]
    col = lambda f: [[f(lib.layers[i][k]) for k in ks] for i, ks in enumerate(keys)]  # noqa: E731
    fixed_mib = lib.info.get("fixed_params", 0) * lib.info.get("dtype_bytes", 4) / MIB
    cons = []
    if max_memory_mib is not None:
        cons.append(Constraint("memory_mib", col(lambda e: e.stats["memory_mib"]), upper=max_memory_mib,
                               offset=fixed_mib))
    if max_runtime_ms is not None:
        cons.append(Constraint("runtime_ms", col(lambda e: e.stats["runtime_ms"]), upper=max_runtime_ms))
    if keep_attention:
        cons.append(Constraint("attention_blocks", [[float(k.startswith("attention = parent")) for k in ks]
                                                    for ks in keys], lower=keep_attention))
    sol = solve(MIPProblem(col(lambda e: e.metrics["kl_div"]), cons, time_limit_s=time_limit_s))[0]
    drop = tuple(i for i, j in enumerate(sol.choice) if "no_op" in keys[i][j])
    return LayerChoice(drop, sol.objective, sol.totals, sol.optimal)


def parent_totals(lib: BlockLibrary) -> dict[str, float]:
    keep = [next(e for k, e in layer.items() if "= parent" in k) for layer in lib.layers]
    fixed_mib = lib.info.get("fixed_params", 0) * lib.info.get("dtype_bytes", 4) / MIB
    return {"memory_mib": fixed_mib + sum(e.stats["memory_mib"] for e in keep),
            "runtime_ms": sum(e.stats["runtime_ms"] for e in keep)}


@dataclass
class BlockRuntimes:
    """vLLM time of one block of each type at one model shape (ms), for one decode step and
    one prefill of the measured batch, and of the whole model; the whole minus its blocks is
    the embedding, LM head and the engine's per-step work."""

    decode_ms: dict[str, float]
    prefill_ms: dict[str, float]
    model_decode_ms: float
    model_prefill_ms: float
    clock: str  # "cpu": the serving process's CPU time; "wall": the wall clock


def phase_ms(t: dict, clock: str, decode_tokens: int) -> tuple[float, float]:
    """(prefill, one decode step) of a nas.costs timing, by `clock`."""
    if clock == "cpu":
        step = (t["full_cpu_ms"] - t["prefill_cpu_ms"]) / decode_tokens
        return t["prefill_cpu_ms"], step if step > 0 else float("nan")
    return t["prefill_ms"], t["decode_step_ms"]


def measure_block_runtimes(model, tok, work_dir: Path, settings, rounds: int = 1, clock: str = "cpu",
                           log=print) -> BlockRuntimes:
    """Prefill and decode-step time of one block of each type, measured in vLLM: the model
    against the model with all but one block of that type removed; the difference over the
    removed count is the per-block time (random weights serve at the same speed)."""
    from core.checkpoint import save_hf
    from nas.costs import measure_in_subprocess
    from nas.nemotron_h import KeptIndices, prune

    if clock not in ("cpu", "wall"):
        raise ValueError(f"clock {clock!r}: expected cpu or wall")
    cfg = model.config
    dirs, removed = [save_hf(model, tok, work_dir / "parent")], {}
    for kind in dict.fromkeys(cfg.layers_block_type):
        idx = [i for i, t in enumerate(cfg.layers_block_type) if t == kind]
        if len(idx) < 2:
            continue
        drop = tuple(idx[1:])
        spec = PruneSpec(drop_layers=drop).resolve(cfg)
        kept = KeptIndices(torch.arange(cfg.hidden_size), layers=[i for i in range(cfg.num_hidden_layers)
                                                                  if i not in drop])
        for i in kept.layers:
            kept.mamba_heads[i] = torch.arange(cfg.mamba_num_heads)
            kept.mamba_channels[i] = torch.arange(cfg.mamba_head_dim)
            kept.ffn[i] = torch.arange(cfg.intermediate_size)
        dirs.append(save_hf(prune(model, spec, kept), tok, work_dir / f"without-{TYPE_NAMES[kind]}"))
        removed[kind] = len(drop)
    timings = [phase_ms(t, clock, settings.decode_tokens) for t in measure_in_subprocess(dirs, settings, rounds)]
    (base_pre, base_dec) = timings[0]
    out = BlockRuntimes({kind: 0.0 for kind in TYPE_NAMES}, {kind: 0.0 for kind in TYPE_NAMES}, base_dec, base_pre,
                        clock)
    for (kind, n), (pre, dec) in zip(removed.items(), timings[1:]):
        out.decode_ms[kind] = max(base_dec - dec, 0.0) / n
        out.prefill_ms[kind] = max(base_pre - pre, 0.0) / n
        log(f"[minipuzzle] {TYPE_NAMES[kind]} block: {out.decode_ms[kind]:.3f} ms per decode step, "
            f"{out.prefill_ms[kind]:.3f} ms per prefill (batch {settings.batch_size}, {clock} time; without {n} "
            f"of them {dec:.2f} / {pre:.1f} ms, whole model {base_dec:.2f} / {base_pre:.1f} ms)")
    if not math.isfinite(sum(out.decode_ms.values()) + sum(out.prefill_ms.values()) + base_dec + base_pre):
        raise RuntimeError(f"block runtimes not finite (a stalled measurement): {out}")
    return out
