"""Instruction following: IFEval-style constraints checked by code.

reward_spec: {"type": "if", "constraints": [{"kind": "max_words", "n": 50},
{"kind": "include_keywords", "keywords": ["ray"]}, ...]}. Score is the fraction of
constraints met (option strict=True: 1.0 only when all are).
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable

from ..registry import reward
from ..sample import RewardResult, RewardSample
from .extract import answer_region


def _words(text: str) -> int:
    return len(re.findall(r"\b\w+\b", text))


def _bullets(text: str) -> int:
    return len(re.findall(r"^\s*[*-]\s+\S", text, re.MULTILINE))


def _is_json(text: str) -> bool:
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _paragraphs(text: str) -> int:
    return len([p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()])


CHECKS: dict[str, Callable[..., bool]] = {
    "min_words": lambda t, n: _words(t) >= n,
    "max_words": lambda t, n: _words(t) <= n,
    "max_chars": lambda t, n: len(t) <= n,
    "include_keywords": lambda t, keywords: all(k.lower() in t.lower() for k in keywords),
    "exclude_keywords": lambda t, keywords: not any(k.lower() in t.lower() for k in keywords),
    "keyword_frequency": lambda t, keyword, n: len(re.findall(re.escape(keyword.lower()), t.lower())) >= n,
    "json_format": lambda t: _is_json(t),
    "bullet_count": lambda t, n: _bullets(t) == n,
    "paragraph_count": lambda t, n: _paragraphs(t) == n,
    "lowercase": lambda t: t == t.lower() and any(c.isalpha() for c in t),
    "uppercase": lambda t: t == t.upper() and any(c.isalpha() for c in t),
    "no_commas": lambda t: "," not in t,
    "starts_with": lambda t, phrase: t.strip().startswith(phrase),
    "ends_with": lambda t, phrase: t.strip().endswith(phrase),
    "title": lambda t: re.search(r"<<[^<>\n]+>>", t) is not None,
}


def check(text: str, constraint: dict[str, Any]) -> bool:
    """One constraint; an unknown kind or wrong arguments raise with the kind named."""
    args = dict(constraint)
    kind = args.pop("kind", None)
    if kind not in CHECKS:
        raise ValueError(f"unknown instruction constraint kind {kind!r}; known: {sorted(CHECKS)}")
    try:
        return bool(CHECKS[kind](text, **args))
    except TypeError as e:
        raise ValueError(f"constraint {kind!r}: bad arguments {sorted(args)}: {e}") from e


@reward("if")
def instruction_following_reward(sample: RewardSample, strict: bool = False) -> RewardResult:
    constraints = sample.reward_spec.get("constraints")
    if not isinstance(constraints, list) or not constraints:
        raise KeyError(f"sample {sample.id}: 'if' reward needs a non-empty reward_spec['constraints']")
    region = answer_region(sample.completion, sample.reasoning)
    if region is None:
        return RewardResult(0.0, {"reason": "reasoning never closed (no </think>)"})
    met = [check(region.strip(), c) for c in constraints]
    score = float(all(met)) if strict else sum(met) / len(met)
    return RewardResult(score, {"met": met, "failed": [c["kind"] for c, ok in zip(constraints, met) if not ok]})
