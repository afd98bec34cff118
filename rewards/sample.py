"""What a reward receives and returns."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.data.schema import Row, validate_row


@dataclass
class RewardSample:
    """One completion to score, with the row's reward metadata and reasoning mode."""

    id: str
    prompt_messages: list[dict[str, str]]
    completion: str
    reward_spec: dict[str, Any]
    reasoning: str = "on"

    @classmethod
    def from_row(cls, row: Row, completion: str) -> "RewardSample":
        return cls(row.id, row.prompt_messages, completion, row.reward, row.reasoning)

    @classmethod
    def from_json(cls, obj: dict[str, Any], default_id: str) -> "RewardSample":
        """A dataset row plus a `completion` field (or its trailing assistant turn)."""
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        obj = dict(obj)
        completion = obj.pop("completion", None)
        row = validate_row(obj, default_id)
        if completion is None:
            completion = row.reference_response
        if not isinstance(completion, str):
            raise ValueError("key 'completion': expected a string (or a trailing assistant turn)")
        return cls.from_row(row, completion)


@dataclass
class RewardResult:
    """A score and whatever explains it (parsed answer, tests passed, error message)."""

    score: float
    info: dict[str, Any] = field(default_factory=dict)


def as_result(value: Any, name: str) -> RewardResult:
    """Accept a float/int/bool or RewardResult; anything else (None included) is an error."""
    if isinstance(value, RewardResult):
        score = value.score
        info = value.info
    elif isinstance(value, (int, float)):
        score, info = value, {}
    else:
        raise TypeError(f"reward {name!r} returned {type(value).__name__}; "
                        "expected a float or RewardResult")
    if isinstance(score, bool):
        score = float(score)
    if not isinstance(score, (int, float)) or not math.isfinite(score):
        raise TypeError(f"reward {name!r} returned score {score!r}; expected a finite float")
    if not isinstance(info, dict):
        raise TypeError(f"reward {name!r} returned info of type {type(info).__name__}; expected dict")
    return RewardResult(float(score), info)
