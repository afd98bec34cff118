"""From measured costs and block scores to a block library, and from a library plus a
budget to MIP problems: one per batch size in the sweep, keeping the best feasible one."""
from __future__ import annotations

import time
from dataclasses import dataclass

from nas.assemble import variant_slug
from nas.costs import SubblockCosts, attention_params, ffn_params, kv_bytes_per_token
from nas.decilm.configuration_decilm import DeciLMConfig
from nas.library import BlockEntry, BlockLibrary
from nas.mip import Constraint, InfeasibleBudget, MIPProblem, MIPSolution, solve
from nas.space import BlockVariant, SearchSpace

MIB = 2 ** 20


@dataclass
class Budget:
    """Upper bounds (None = unconstrained); throughput is a lower bound in tokens/s."""

    decode_ms: float | None = None  # one decode step at the batch size
    prefill_ms: float | None = None
    memory_mib: float | None = None  # parameters + KV cache for batch x seq_len tokens
    num_params: float | None = None
    throughput_tokens_per_s: float | None = None  # decode throughput


def fixed_params(cfg: DeciLMConfig) -> int:
    """Parameters outside the searched layers: embeddings, LM head, final norm."""
    return cfg.vocab_size * cfg.hidden_size * (1 if cfg.tie_word_embeddings else 2) + cfg.hidden_size


def build_library(cfg: DeciLMConfig, space: SearchSpace, costs: SubblockCosts,
                  scores: list[dict[BlockVariant, dict[str, float]]], dtype_bytes: int = 4) -> BlockLibrary:
    lib = BlockLibrary([], info={**costs.settings, "overhead_decode_ms": costs.overhead_decode_ms,
                                 "overhead_prefill_ms": costs.overhead_prefill_ms, "dtype_bytes": dtype_bytes,
                                 "fixed_params": fixed_params(cfg)})
    for i in range(cfg.num_hidden_layers):
        for v in space.block_variants(i):
            a, f = v.attention, v.ffn
            ap, fp = attention_params(cfg, a), ffn_params(cfg, f)
            ad = costs.attention_decode_ms.get(variant_slug(a), 0.0)
            fd = costs.ffn_decode_ms.get(variant_slug(f), 0.0)
            apf = costs.attention_prefill_ms.get(variant_slug(a), 0.0)
            fpf = costs.ffn_prefill_ms.get(variant_slug(f), 0.0)
            stats = {"num_kv_heads": a.kv_heads, "ffn_intermediate_size": f.width,
                     "num_params": ap + fp, "attention_num_params": ap, "ffn_num_params": fp,
                     "memory_mib": (ap + fp) * dtype_bytes / MIB, "attention_memory_mib": ap * dtype_bytes / MIB,
                     "ffn_memory_mib": fp * dtype_bytes / MIB,
                     "kv_bytes_per_token": kv_bytes_per_token(cfg, a, dtype_bytes),
                     "runtime_ms": ad + fd, "attention_runtime_ms": ad, "ffn_runtime_ms": fd,
                     "prefill_ms": apf + fpf}
            lib.add(i, v.key(cfg), BlockEntry(v, stats, dict(scores[i][v]) if scores else {}))
    return lib


def mip_problem(lib: BlockLibrary, budget: Budget, batch_size: int, seq_len: int, metric: str = "kl_div"
                ) -> tuple[MIPProblem, list[list[str]]]:
    """The MIP for one batch size. Runtimes are those measured at that batch size
    (`runtime_ms@B` when the library holds several, else `runtime_ms`)."""
    keys = [list(layer) for layer in lib.layers]
    entries = [[lib.layers[i][k] for k in ks] for i, ks in enumerate(keys)]
    measured = lib.info.get("batch_size")

    def runtime(e: BlockEntry) -> float:
        k = f"runtime_ms@{batch_size}"
        if k in e.stats:
            return e.stats[k]
        if measured not in (None, batch_size):
            raise ValueError(f"no decode runtime measured at batch {batch_size} (library measured at {measured})")
        return e.stats["runtime_ms"]

    table = lambda f: [[f(e) for e in row] for row in entries]  # noqa: E731
    info, cons = lib.info, []
    overhead = info.get("overhead_decode_ms", 0.0)
    if budget.decode_ms is not None:
        cons.append(Constraint("decode_ms", table(runtime), upper=budget.decode_ms, offset=overhead))
    if budget.throughput_tokens_per_s is not None:  # b / step >= T  <=>  step <= b / T
        cons.append(Constraint("decode_step_ms_for_throughput", table(runtime),
                               upper=1e3 * batch_size / budget.throughput_tokens_per_s, offset=overhead))
    if budget.prefill_ms is not None:
        cons.append(Constraint("prefill_ms", table(lambda e: e.stats["prefill_ms"]), upper=budget.prefill_ms,
                               offset=info.get("overhead_prefill_ms", 0.0)))
    if budget.memory_mib is not None:
        kv = lambda e: e.stats["memory_mib"] + batch_size * seq_len * e.stats["kv_bytes_per_token"] / MIB  # noqa: E731
        cons.append(Constraint("memory_mib", table(kv), upper=budget.memory_mib,
                               offset=info.get("fixed_params", 0) * info.get("dtype_bytes", 4) / MIB))
    if budget.num_params is not None:
        cons.append(Constraint("num_params", table(lambda e: e.stats["num_params"]), upper=budget.num_params,
                               offset=info.get("fixed_params", 0)))
    return MIPProblem(table(lambda e: e.metrics[metric]), cons), keys


@dataclass
class SearchResult:
    batch_size: int
    solutions: list[MIPSolution]
    variants: list[list[BlockVariant]]  # per solution, per layer
    seconds: float


def search(lib: BlockLibrary, budget: Budget, batch_sizes: list[int], seq_len: int, num_solutions: int = 1,
           diversity: float = 0.8, metric: str = "kl_div") -> SearchResult:
    """Solve per batch size; keep the lowest-score feasible batch (larger batch on ties)."""
    best, errors, t0 = None, [], time.perf_counter()
    for b in batch_sizes:
        problem, keys = mip_problem(lib, budget, b, seq_len, metric)
        try:
            sols = solve(problem, num_solutions, diversity)
        except InfeasibleBudget as e:
            errors.append(f"batch {b}: {e}")
            continue
        variants = [[lib.layers[i][keys[i][j]].variant for i, j in enumerate(s.choice)] for s in sols]
        if best is None or sols[0].objective <= best.solutions[0].objective + 1e-12:
            best = SearchResult(b, sols, variants, 0.0)
    if best is None:
        raise InfeasibleBudget("; ".join(errors))
    best.seconds = time.perf_counter() - t0
    return best


def predicted_decode_ms(lib: BlockLibrary, variants: list[BlockVariant], cfg: DeciLMConfig) -> float:
    return lib.info.get("overhead_decode_ms", 0.0) + sum(
        lib.layers[i][v.key(cfg)].stats["runtime_ms"] for i, v in enumerate(variants))

