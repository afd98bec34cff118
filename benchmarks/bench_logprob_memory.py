"""Peak memory of per-token log-probs + entropy at 4k response tokens: the chunked path
(`rl.logprobs.response_logprobs`) against the full-logits path it replaced.

    python benchmarks/bench_logprob_memory.py [--response-tokens 4096] [--vocab 32000]

Each case runs in a fresh process: the peak resident memory (VmHWM) is reset just before
the measured call, so the figure is what that call added on top of the model and inputs.
Cases: the no-grad pass (old/reference log-probs) and the training pass (forward +
backward of the summed log-probs). The model is a 2-layer Llama with a 32k vocabulary, so
the vocabulary-sized tensors dominate, as they do at scale. Writes
benchmarks/results/logprob_memory.json. CPU only here (no GPU is lent to this task); on a
GPU the same ratio holds for `torch.cuda.max_memory_allocated`.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT_TOKENS = 128


def _status_mib(key: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) / 1024


def old_path(model, x):
    """The path before chunking (rl/policy_worker.py at 82fae41): full fp32 logits, log_softmax over
    the response rows, gather, entropy from the same [B, R, V] tensor."""
    import torch.nn.functional as F

    logits = model(input_ids=x.input_ids, attention_mask=x.attention_mask).logits.float()
    resp = logits.gather(1, x.response_positions()[:, :, None].expand(-1, -1, logits.shape[-1]))
    logp_all = F.log_softmax(resp, dim=-1)
    logp = logp_all.gather(-1, x.targets[:, :, None])[:, :, 0]
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy.detach()


def run_case(path: str, grad: bool, response_tokens: int, vocab: int, chunk: int) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rl.batch import model_inputs
    from rl.logprobs import response_logprobs

    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=688, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=PROMPT_TOKENS + response_tokens + 8)
    model = LlamaForCausalLM(cfg)
    seq = torch.randint(0, vocab, (PROMPT_TOKENS + response_tokens,)).tolist()
    x = model_inputs([seq], [PROMPT_TOKENS], pad_id=0)
    if not grad:
        model.eval()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark to the current RSS
    base = _status_mib("VmRSS")
    start = time.perf_counter()
    with torch.set_grad_enabled(grad):
        logp, entropy = old_path(model, x) if path == "old" else response_logprobs(model, x, chunk)
        total = logp.sum()
        if grad:
            total.backward()
    seconds = time.perf_counter() - start
    return {"path": path, "grad": grad, "peak_extra_mib": round(_status_mib("VmHWM") - base, 1),
            "seconds": round(seconds, 2), "logp_sum": float(total.detach()), "entropy_mean": float(entropy.mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--response-tokens", type=int, default=4096)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--chunk-tokens", type=int, default=1024)
    ap.add_argument("--case", default="", help="internal: path:grad, run in a child process")
    args = ap.parse_args()
    if args.case:
        path, grad = args.case.split(":")
        print(json.dumps(run_case(path, grad == "grad", args.response_tokens, args.vocab, args.chunk_tokens)))
        return
    from benchmarks.common import machine_facts

    cases = []
    for grad in ("nograd", "grad"):
        for path in ("old", "chunked"):
            out = subprocess.run([sys.executable, __file__, "--case", f"{path}:{grad}", "--response-tokens",
                                  str(args.response_tokens), "--vocab", str(args.vocab), "--chunk-tokens",
                                  str(args.chunk_tokens)], capture_output=True, text=True, check=True)
            cases.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(cases[-1], flush=True)
    by = {(c["path"], c["grad"]): c for c in cases}
    logits_mib = args.response_tokens * args.vocab * 4 / 2**20
    result = {
        "command": "python benchmarks/bench_logprob_memory.py " + " ".join(sys.argv[1:]),
        "response_tokens": args.response_tokens, "prompt_tokens": PROMPT_TOKENS, "vocab": args.vocab,
        "chunk_tokens": args.chunk_tokens, "one_fp32_logits_tensor_mib": round(logits_mib, 1),
        "cases": cases,
        "ratio_chunked_to_old": {g: round(by[("chunked", g == "grad")]["peak_extra_mib"]
                                          / by[("old", g == "grad")]["peak_extra_mib"], 3)
                                 for g in ("nograd", "grad")},
        "max_abs_logp_sum_diff": max(abs(by[("old", g)]["logp_sum"] - by[("chunked", g)]["logp_sum"])
                                     for g in (False, True)),
        "device": "cpu (no GPU lent to this task)",
        "machine": machine_facts(),
    }
    out = ROOT / "benchmarks" / "results" / "logprob_memory.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("ratio_chunked_to_old", "max_abs_logp_sum_diff")}))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
