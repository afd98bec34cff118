"""Tool calls in the Llama-Nemotron syntax: `<TOOLCALL>[{"name": ..., "arguments": {...}}]</TOOLCALL>`.

A turn either makes no call (the episode's answer), well-formed calls, or a malformed
attempt. A malformed attempt (an unclosed tag, bad JSON, a call without a string `name` or
with non-object `arguments`) is not an exception: it becomes an error observation the
policy reads on its next turn, so a broken call costs a turn, never the run.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

OPEN, CLOSE = "<TOOLCALL>", "</TOOLCALL>"
_TAGGED = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedTurn:
    """What a policy turn asked for: `attempted` is False for a plain answer."""

    attempted: bool
    calls: list[ToolCall] = field(default_factory=list)
    error: str = ""  # non-empty: the attempt was malformed (the message the policy is shown)


def _call(obj: Any, i: int) -> ToolCall:
    if not isinstance(obj, dict):
        raise ValueError(f"call {i}: expected an object {{\"name\": ..., \"arguments\": {{...}}}}, "
                         f"got {type(obj).__name__}")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"call {i}: 'name' must be a non-empty string")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args)
        except json.JSONDecodeError as e:
            raise ValueError(f"call {i}: 'arguments' is a string that is not JSON ({e.msg})") from None
    if not isinstance(args, dict):
        raise ValueError(f"call {i}: 'arguments' must be an object, got {type(args).__name__}")
    return ToolCall(name, args)


def parse_turn(text: str) -> ParsedTurn:
    """The calls in one turn's answer region (callers strip the think block first)."""
    bodies = _TAGGED.findall(text)
    if not bodies:
        if OPEN in text or CLOSE in text:
            return ParsedTurn(True, error=f"malformed tool call: {OPEN} and {CLOSE} must enclose a JSON list")
        return ParsedTurn(False)
    calls: list[ToolCall] = []
    try:
        for body in bodies:
            try:
                value = json.loads(body.strip())
            except json.JSONDecodeError as e:
                raise ValueError(f"not valid JSON ({e.msg} at char {e.pos})") from None
            items = value if isinstance(value, list) else [value]
            if not items:
                raise ValueError("empty call list")
            calls += [_call(obj, len(calls) + j) for j, obj in enumerate(items)]
    except ValueError as e:
        return ParsedTurn(True, error=f"malformed tool call: {e}")
    return ParsedTurn(True, calls)


def render_calls(calls: list[ToolCall]) -> str:
    """The syntax a policy writes (SFT traces, tests)."""
    return OPEN + json.dumps([{"name": c.name, "arguments": c.arguments} for c in calls]) + CLOSE
