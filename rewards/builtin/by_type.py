"""`by_type`: score each sample with the built-in reward its row's `reward.type` names, so
one GRPO run can mix math, code, instruction-following and tool-call rows."""
from __future__ import annotations

from typing import Any

from ..registry import reward
from ..sample import RewardResult, RewardSample
from .code import code_reward
from .ifeval import instruction_following_reward
from .math import math_reward
from .tool import tool_decision_reward

BY_TYPE = {"math": math_reward, "code": code_reward, "if": instruction_following_reward,
           "tool": tool_decision_reward}


@reward("by_type", runs_in="caller")  # each built-in it calls bounds its own work
def by_type_reward(sample: RewardSample, **options: Any) -> RewardResult:
    """options: {"math": {...}, "code": {"mode": "fraction"}, ...} passed to that reward."""
    kind = sample.reward_spec.get("type")
    if kind not in BY_TYPE:
        raise ValueError(f"sample {sample.id}: no built-in reward for reward.type {kind!r}; "
                         f"known: {sorted(BY_TYPE)}")
    return BY_TYPE[kind](sample, **options.get(kind, {}))
