"""Normalised final answers, the ballots of majority voting (cons@k).

Scoring is the rewards' job; voting needs a key under which equivalent answers collide.
Answers are read exactly where the rewards read them (`rewards.builtin.extract`: after
`</think>` in `on` mode, none if the reasoning never closes). Math answers are then
canonicalised through math-verify/sympy, so `0.75`, `3/4` and `\\frac{3}{4}` cast the same
vote; code votes with its program, whitespace collapsed; a tool-call response with its
decision category; anything else with its whitespace-collapsed answer text.
"""
from __future__ import annotations

from rewards.builtin.extract import answer_region, code_block, final_answer
from rewards.builtin.tool import classify


def canonical_math(expr: str) -> str:
    import sympy
    from math_verify import parse

    try:
        parsed = parse(f"$\\boxed{{{expr}}}$")
        if parsed:
            value = parsed[0]
            if isinstance(value, sympy.Basic) and value.is_number:
                value = sympy.nsimplify(value, rational=True)
            return str(value)
    except Exception:  # noqa: BLE001 - an unparsable answer still votes, under its own spelling
        pass
    return " ".join(expr.split())


def answer_key(reward_type: str, text: str, mode: str) -> str | None:
    region = answer_region(text, mode)
    if region is None:
        return None
    if reward_type == "math":
        answer = final_answer(region)
        return canonical_math(answer) if answer else None
    if reward_type == "code":
        code = code_block(region)
        return " ".join(code.split()) if code else None
    if reward_type == "tool":
        return classify(region)[0]
    return " ".join(region.split()) or None
