"""Row schemas for every JSONL the toolkit reads, and their validation.

A row for RL / SFT / evaluation (docs/your_own_model.md lists the layouts read into it):

    {"id": "math-00017",                        # optional; derived from file:line if absent
     "messages": [{"role": "user", "content": "..."},            # OpenAI chat format
                  {"role": "assistant", "content": "<think>...</think>..."}],  # optional
     "reasoning": "on" | "off",
     "reward": {"type": "math", "answer": "3/4"}                 # or
               {"type": "code", "entry_point": "f", "tests": ["assert f(1) == 2", ...]},
     "meta": {"source": "synthetic-math", "difficulty": 2}}      # optional, free-form

Validation returns the reason a row is malformed, so the loader can name file, line and key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REASONING_MODES = ("on", "off")
ROLES = ("system", "user", "assistant", "tool")


class RowError(ValueError):
    """A row does not match its schema; the message names the offending key."""


@dataclass
class Row:
    """One validated task row."""

    id: str
    messages: list[dict[str, str]]
    reasoning: str
    reward: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        """The conversation without a trailing assistant turn (what a generator is given)."""
        if self.messages and self.messages[-1]["role"] == "assistant":
            return self.messages[:-1]
        return self.messages

    @property
    def reference_response(self) -> str | None:
        """The trailing assistant turn, if the row carries one (SFT targets)."""
        if self.messages and self.messages[-1]["role"] == "assistant":
            return self.messages[-1]["content"]
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "messages": self.messages, "reasoning": self.reasoning,
                "reward": self.reward, "meta": self.meta}


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise RowError("key 'messages': expected a non-empty list of {role, content}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RowError(f"key 'messages[{i}]': expected an object, got {type(m).__name__}")
        if m.get("role") not in ROLES:
            raise RowError(f"key 'messages[{i}].role': expected one of {ROLES}, got {m.get('role')!r}")
        if not isinstance(m.get("content"), str):
            raise RowError(f"key 'messages[{i}].content': expected a string")
    if not any(m["role"] == "user" for m in messages):
        raise RowError("key 'messages': no user turn")


def _check_reward(reward: Any) -> None:
    if not isinstance(reward, dict) or not isinstance(reward.get("type"), str):
        raise RowError("key 'reward': expected an object with a string 'type'")
    kind = reward["type"]
    if kind == "math" and not isinstance(reward.get("answer"), (str, int, float)):
        raise RowError("key 'reward.answer': a math row needs a gold answer")
    if kind == "code":
        tests = reward.get("tests")
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
            raise RowError("key 'reward.tests': a code row needs a non-empty list of test strings")


def validate_row(obj: Any, default_id: str) -> Row:
    """Turn a decoded JSON object into a Row or raise RowError naming the bad key."""
    if not isinstance(obj, dict):
        raise RowError(f"expected a JSON object, got {type(obj).__name__}")
    known = {"id", "messages", "reasoning", "reward", "meta"}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise RowError(f"unknown key(s) {unknown}; allowed: {sorted(known)}")
    _check_messages(obj.get("messages"))
    reasoning = obj.get("reasoning", "on")
    if reasoning not in REASONING_MODES:
        raise RowError(f"key 'reasoning': expected 'on' or 'off', got {reasoning!r}")
    _check_reward(obj.get("reward"))
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise RowError("key 'meta': expected an object")
    return Row(id=str(obj.get("id", default_id)), messages=obj["messages"], reasoning=reasoning,
               reward=obj["reward"], meta=meta)
