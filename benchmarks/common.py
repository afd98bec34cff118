"""Shared pieces of the rollout and GRPO benchmarks: the policies they run, the prompts,
machine facts and a load-average gate.

Why a special policy: a randomly initialised model puts ~1/vocab probability on
end-of-sequence, so nearly every sample runs to `max_tokens` and HF `generate` wastes
nothing on padding -- not what real users see, whose completions end at varied lengths.
Training the 24 M model long enough to stop on its own costs CPU-hours on this shared
2-core machine, so `bench_policy` rescales the eos output row of the random model instead
(see there); the benchmarks report the length distribution they actually got.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine_facts() -> dict:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def wait_for_quiet(max_load: float, max_wait_s: float, poll_s: float = 60.0) -> dict:
    """Poll the 1-minute load average until it drops below `max_load` (or give up after
    `max_wait_s`); the machine is shared, so the answer is recorded with the numbers."""
    start = time.time()
    while os.getloadavg()[0] >= max_load and time.time() - start < max_wait_s:
        print(f"[bench] load average {load1()} >= {max_load}; waiting", flush=True)
        time.sleep(poll_s)
    return {"waited_s": round(time.time() - start, 1), "load_at_start": load1(),
            "quiet": os.getloadavg()[0] < max_load}


def bench_policy(preset: str, kind: str = "auto", mean_tokens: int = 64) -> Path:
    """The policy a benchmark runs: an HF dir that transformers, vLLM and TRL all load.

    kind "sft": the GRPO recipe's tiny default (the published tiny SFT policy), tiny only.
    kind "eos": the embedded `preset` model, randomly initialised, with its end-of-sequence
    output row rescaled so that the mean per-token eos probability is 1/`mean_tokens`:
    samples then stop at widely varied lengths (the hazard depends on the context), as a
    trained policy's do, without spending CPU-hours on training. Its weights are otherwise
    random, so rewards are ~0 -- irrelevant to throughput, which is all it is used for.
    kind "auto": "sft" for tiny when that policy is already built, else "eos".
    Call under `if __name__ == "__main__":` (building the SFT policy may start vLLM).
    """
    from core.paths import reforge_home

    if kind == "auto":
        kind = "sft" if preset == "tiny" and (reforge_home() / "sft-tiny" / "config.json").exists() else "eos"
    if kind == "sft":
        from sft.default_policy import ensure_tiny_sft_policy

        return ensure_tiny_sft_policy()
    dest = reforge_home() / f"bench-{preset}-eos{mean_tokens}"
    if not (dest / "config.json").exists():
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        _build_eos_policy(preset, mean_tokens, tmp)
        if dest.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.replace(dest)
    return dest


def _build_eos_policy(preset: str, mean_tokens: int, out: Path, seed: int = 0, spread: float = 1.5) -> None:
    import torch

    from core.checkpoint import load_hf, save_hf
    from core.tiny import build_tiny_model

    build_tiny_model(out, preset=preset, seed=seed)
    model, tok = load_hf(out)
    eos = tok.eos_token_id
    # Hidden states along 128-token continuations of real prompts; a random-init model
    # samples nearly uniformly, so uniform random tokens stand in for its own samples.
    _, prompts = math_prompts(tok, 16, seed=123)
    g = torch.Generator().manual_seed(seed)
    seqs = [p + torch.randint(0, len(tok), (128,), generator=g).tolist() for p in prompts]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s in seqs])
    with torch.no_grad():
        h = model.model(input_ids=ids).last_hidden_state  # after the final norm
        h = torch.cat([h[i, len(p):len(s)] for i, (p, s) in enumerate(zip(prompts, seqs))])
        w = model.lm_head.weight
        logits = h @ w.T
        # Random-init hidden states share one dominant direction u: adding t*u/mean(h.u) to the
        # eos row acts as a bias of ~t, while scaling the original row sets how much the eos
        # logit varies with the context (std `spread` nats), i.e. how varied lengths are.
        u = h.mean(0) / h.mean(0).norm()
        hu = float((h @ u).mean())
        e = logits[:, eos].clone()
        scale = spread / float(e.std())
        target = 1.0 / mean_tokens

        def p_eos(t: float) -> float:
            logits[:, eos] = scale * e + t * (h @ u) / hu
            return float(torch.softmax(logits, -1)[:, eos].mean())

        lo, hi = -100.0, 100.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if p_eos(mid) < target else (lo, mid)
        w[eos] = scale * w[eos] + hi * u / hu
    save_hf(model, tok, out)
    (out / "bench_policy.json").write_text(__import__("json").dumps(
        {"preset": preset, "eos_row_scale": scale, "eos_bias_like_shift": hi, "eos_logit_spread": spread,
         "target_mean_eos_prob": target, "seed": seed}))


def math_prompts(tokenizer, n: int, seed: int = 10_000) -> tuple[list[dict], list[list[int]]]:
    """`n` synthetic math rows (prompt only, `on` mode) and their chat-formatted token ids,
    built exactly as the GRPO loop builds them."""
    from core.chat import with_system_prompt
    from core.data.synth import math_rows
    from core.tokenization import encode_prompt

    rows = math_rows(n, seed, modes=("on",), with_response=False)
    ids = [encode_prompt(tokenizer, with_system_prompt(r["messages"], "on")) for r in rows]
    return rows, ids


def length_stats(lengths: list[int], max_tokens: int) -> dict:
    s = sorted(lengths)
    q = lambda f: s[min(len(s) - 1, int(f * len(s)))]  # noqa: E731
    return {"samples": len(s), "mean": round(sum(s) / max(len(s), 1), 1), "min": s[0], "p10": q(0.1),
            "p50": q(0.5), "p90": q(0.9), "max": s[-1],
            "truncated_fraction": round(sum(x >= max_tokens for x in s) / max(len(s), 1), 3)}
