"""Held-out task accuracy of a model served by vLLM: greedy answers to synthetic math.

`score_math` is the local scorer (the `\\boxed{...}` after `</think>`, compared as exact
fractions); it has this narrow boundary so the pipeline can route scoring to `rewards/`.
"""
from __future__ import annotations

import re
from fractions import Fraction

from core.chat import THINK_CLOSE

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def score_math(completion: str, gold: str) -> float:
    """1.0 when the boxed answer after `</think>` equals the gold answer as a fraction."""
    if THINK_CLOSE not in completion:
        return 0.0
    found = _BOXED.findall(completion.split(THINK_CLOSE, 1)[1])
    if not found:
        return 0.0
    try:
        return float(Fraction(found[-1].strip().replace(" ", "")) == Fraction(gold))
    except (ValueError, ZeroDivisionError):
        return 0.0


def heldout_accuracy(engine, prompts: list[list[int]], golds: list[str], max_tokens: int = 96) -> float:
    from core.engines.base import SamplingSettings

    comps = engine.generate(prompts, SamplingSettings(temperature=0.0, max_tokens=max_tokens))
    return sum(score_math(c.text, g) for c, g in zip(comps, golds)) / len(golds)
