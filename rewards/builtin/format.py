"""The format reward of the Llama-Nemotron RL stage: the reasoning toggle is obeyed."""
from __future__ import annotations

import re

from ..registry import reward
from ..sample import RewardResult, RewardSample
from .extract import THINK_CLOSE, THINK_OPEN

_ON = re.compile(r"\s*<think>(.*?)</think>(.*)", re.DOTALL)


def format_ok(completion: str, reasoning: str) -> tuple[bool, str]:
    opens, closes = completion.count(THINK_OPEN), completion.count(THINK_CLOSE)
    if reasoning == "off":
        if opens or closes:
            return False, "think tags in 'off' mode"
        return True, "ok"
    if opens != 1 or closes != 1:
        return False, f"expected one <think> and one </think>, found {opens} and {closes}"
    match = _ON.fullmatch(completion)
    if match is None:
        return False, "the completion must start with the <think> block"
    if not match.group(2).strip():
        return False, "no answer after </think>"
    return True, "ok"


@reward("format")
def format_reward(sample: RewardSample) -> RewardResult:
    """`on`: one leading <think>…</think> block, then a non-empty answer. `off`: no tags."""
    ok, reason = format_ok(sample.completion, sample.reasoning)
    return RewardResult(1.0 if ok else 0.0, {"reason": reason})
