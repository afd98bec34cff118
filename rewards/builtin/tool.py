"""Tool-call decisions (When2Call, METHODS §5): is the response a tool call, a request for
missing information, a statement that it cannot answer, or a direct answer?

reward_spec: {"type": "tool", "correct": "tool_call" | "request_for_info" |
"cannot_answer", "tools": [{"name": ..., ...} or JSON strings], "call"?: {"name", "arguments"}}.
Score 1.0 for the correct category (and, for a tool call, an offered tool with the expected
name and arguments when given), 0.0 otherwise, and `hallucination_penalty` (-1.0) for a call
to a tool that was not offered, e.g. any tool call when no tool fits.
"""
from __future__ import annotations

import json
import re
from typing import Any

from ..registry import reward
from ..sample import RewardResult, RewardSample
from .extract import answer_region

CATEGORIES = ("direct", "tool_call", "request_for_info", "cannot_answer")
_CALL_TAGS = re.compile(r"<(TOOLCALL|toolcall|tool_call)>(.*?)</\1>", re.DOTALL)
_CANNOT = re.compile(r"\b(can ?not|can't|unable to|not able to|don't have (?:access|a tool|the "
                     r"(?:ability|tools?))|no (?:available )?tools?|none of the (?:available )?tools)\b",
                     re.IGNORECASE)
_ASK = re.compile(r"\b(could you|can you|please (?:provide|specify|tell|share|let me know)|"
                  r"what is|what's|which|would you|do you)\b", re.IGNORECASE)


def _json_calls(text: str) -> list[dict[str, Any]] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    calls = value if isinstance(value, list) else [value]
    if calls and all(isinstance(c, dict) and "name" in c for c in calls):
        return calls
    return None


def parse_calls(text: str) -> list[dict[str, Any]] | None:
    """Tool calls in tagged (<TOOLCALL>[…]</TOOLCALL>, <tool_call>…) or bare JSON form."""
    tagged = _CALL_TAGS.findall(text)
    if tagged:
        calls = [c for _, body in tagged for c in (_json_calls(body.strip()) or [])]
        return calls or [{"name": None}]  # tagged but unparseable is still an attempted call
    return _json_calls(text.strip())


def classify(text: str) -> tuple[str, list[dict[str, Any]]]:
    calls = parse_calls(text)
    if calls:
        return "tool_call", calls
    if _CANNOT.search(text):
        return "cannot_answer", []
    if "?" in text and _ASK.search(text) or text.strip().endswith("?"):
        return "request_for_info", []
    return "direct", []


def _tool_names(tools: list[Any]) -> set[str]:
    names = set()
    for tool in tools:
        spec = json.loads(tool) if isinstance(tool, str) else tool
        spec = spec.get("function", spec)  # OpenAI {"type": "function", "function": {...}}
        names.add(spec["name"])
    return names


@reward("tool")
def tool_decision_reward(sample: RewardSample, hallucination_penalty: float = -1.0) -> RewardResult:
    spec = sample.reward_spec
    correct = spec.get("correct")
    if correct not in CATEGORIES[1:]:
        raise ValueError(f"sample {sample.id}: reward_spec['correct'] must be one of "
                         f"{CATEGORIES[1:]}, got {correct!r}")
    region = answer_region(sample.completion, sample.reasoning)
    if region is None:
        return RewardResult(0.0, {"reason": "reasoning never closed (no </think>)"})
    category, calls = classify(region)
    info: dict[str, Any] = {"category": category, "correct": correct}
    if category == "tool_call":
        offered = _tool_names(spec.get("tools", []))
        called = [c.get("name") for c in calls]
        info["called"] = called
        if not all(name in offered for name in called):
            return RewardResult(hallucination_penalty, {**info, "reason": "called a tool not offered"})
        expected = spec.get("call")
        if correct == "tool_call" and expected is not None:
            args = calls[0].get("arguments", calls[0].get("parameters", {}))
            if called[0] != expected["name"] or any(args.get(k) != v for k, v in
                                                   expected.get("arguments", {}).items()):
                return RewardResult(0.0, {**info, "reason": "wrong tool or arguments"})
    return RewardResult(1.0 if category == correct else 0.0, info)
