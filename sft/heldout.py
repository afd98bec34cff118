"""Held-out accuracy of a policy in both reasoning modes: generate with vLLM, then score.

`score_completion(row, text)` is the single scoring boundary; it uses small local checks
(boxed answer compared as a Fraction; code tests in a subprocess with a timeout) so SFT
does not depend on `rewards/`. A completion in `on` mode must close its think block;
the answer is read after the checkpoint's think-close tag (`</think>` by default).
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

from core.chat import ChatSettings, chat_settings, split_think, with_system_prompt
from core.tokenization import encode_prompt

CODE_BLOCK = re.compile(r"```(?:python)?\n(.*?)```", re.S)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def _fraction(s: str) -> Fraction | None:
    try:
        return Fraction(s.strip().replace(" ", ""))
    except (ValueError, ZeroDivisionError):
        return None


def answer_part(row: dict, text: str, settings: ChatSettings | None = None) -> str | None:
    thought, answer = split_think(text, settings)
    if row.get("reasoning", "on") == "on" and thought is None:
        return None  # no think block in on mode
    return answer


def run_code(program: str, timeout: float = 5.0) -> bool:
    try:
        proc = subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, timeout=timeout,
                              env={}, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def score_completion(row: dict, completion_text: str, settings: ChatSettings | None = None) -> float:
    """1.0 if the completion answers the row correctly in the row's mode, else 0.0
    (the think tags are the checkpoint's, `settings`; default `<think>`/`</think>`)."""
    answer = answer_part(row, completion_text, settings)
    if answer is None:
        return 0.0
    reward = row["reward"]
    if reward["type"] == "math":
        got, gold = last_boxed(answer), _fraction(str(reward["answer"]))
        return float(got is not None and gold is not None and _fraction(got) == gold)
    if reward["type"] == "code":
        blocks = CODE_BLOCK.findall(answer)
        return float(bool(blocks) and run_code(blocks[-1] + "\n" + "\n".join(reward["tests"]) + "\n"))
    raise ValueError(f"no held-out scorer for reward type {reward['type']!r}")


@dataclass
class HeldoutResult:
    accuracy: dict[str, float]  # flat: accuracy_on, accuracy_off, accuracy_on_math_l3, ...
    samples: list[dict]  # per completion: id, mode, domain, level, score, text


def summarize(samples: list[dict]) -> dict[str, float]:
    groups: dict[str, list[float]] = defaultdict(list)
    for s in samples:
        for key in (f"accuracy_{s['mode']}", f"accuracy_{s['mode']}_{s['domain']}",
                    f"accuracy_{s['mode']}_{s['domain']}_l{s['level']}"):
            groups[key].append(s["score"])
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(groups.items())}


def evaluate(engine, tok, rows: list[dict], max_tokens: int = 128) -> HeldoutResult:
    """Greedy completions for prompt-only rows (each row carries its own mode), scored."""
    from core.engines.base import SamplingSettings

    prompts = [encode_prompt(tok, with_system_prompt(r["messages"], r["reasoning"])) for r in rows]
    settings = chat_settings(tok)
    outs = engine.generate(prompts, SamplingSettings(n=1, temperature=0.0, max_tokens=max_tokens))
    samples = []
    for c in outs:
        r = rows[c.prompt_index]
        samples.append({"id": r["id"], "mode": r["reasoning"], "domain": r["reward"]["type"],
                        "level": r.get("meta", {}).get("difficulty", 0),
                        "score": score_completion(r, c.text, settings), "text": c.text})
    return HeldoutResult(summarize(samples), samples)
