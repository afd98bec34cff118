"""Reading a completion: the answer region after the reasoning, boxed values, code blocks."""
from __future__ import annotations

import re

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_NUMBER = re.compile(r"\\[dt]?frac\{[^{}]*\}\{[^{}]*\}|-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?")
_CODE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def answer_region(completion: str, reasoning: str) -> str | None:
    """Where the answer may be read. In `on` mode only after `</think>`: a completion whose
    reasoning never closes has no answer. In `off` mode the whole completion."""
    if reasoning == "on":
        if THINK_CLOSE not in completion:
            return None
        return completion.rsplit(THINK_CLOSE, 1)[1]
    return completion


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start:i].strip()
    return None


def final_answer(text: str) -> str | None:
    """The boxed value, else the last number or fraction in the text."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(text)
    return numbers[-1].strip() if numbers else None


def code_block(text: str) -> str | None:
    """The last ```python block, else the last fenced block of any language."""
    blocks = _CODE.findall(text)
    python = [code for lang, code in blocks if lang.lower() in ("python", "py", "python3")]
    if python:
        return python[-1]
    return blocks[-1][1] if blocks else None
