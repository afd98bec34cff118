"""The math reward with checked working: the answer is right *and* every equation holds.

Why it exists: a small policy often reaches the right final answer through broken
arithmetic. On the tiny default SFT policy, 35% (level 2), 63% (level 3) and 91% (level 4)
of the sampled completions with a correct answer contain a false equation such as
`2 * 3 = 4`; rewarding them on the answer alone teaches the false facts back to every
level (see benchmarks/RESULTS.md, GRPO). Every `a op b = c` written in the reasoning is
recomputed with exact rational arithmetic, so the check is as verifiable as the answer.
"""
from __future__ import annotations

import ast
import operator
import re
from fractions import Fraction

from ..registry import reward
from ..sample import RewardResult, RewardSample
from .extract import THINK_CLOSE
from .math import math_reward

_NUM = r"\d+(?:\.\d+)?"
# An arithmetic left side (numbers joined by + - * / x ×, parentheses allowed) = one number.
_EQUATION = re.compile(
    rf"((?:\(\s*)*{_NUM}(?:\s*\)*\s*[-+*/×x]\s*\(*\s*{_NUM}\s*\)*)+)\s*=\s*(-?{_NUM}(?:\s*/\s*\d+)?)")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_value(node.left), _value(node.right))
    raise ValueError(f"not arithmetic: {ast.dump(node)}")


def evaluate(expression: str) -> Fraction:
    """Exact value of an arithmetic expression over decimal numbers (ZeroDivisionError on /0)."""
    text = expression.replace("×", "*").replace("x", "*")
    return _value(ast.parse(text, mode="eval").body)


def checked_equations(text: str) -> list[tuple[str, bool]]:
    """Every equation in `text` with whether its two sides agree (unevaluable = false)."""
    out = []
    for left, right in _EQUATION.findall(text):
        try:
            holds = evaluate(left) == evaluate(right)
        except (ZeroDivisionError, ValueError, SyntaxError):
            holds = False
        out.append((f"{left.strip()} = {right.strip()}", holds))
    return out


def false_equations(text: str) -> list[str]:
    """The equations in `text` whose two sides differ (or cannot be evaluated)."""
    return [eq for eq, holds in checked_equations(text) if not holds]


def working(completion: str, reasoning: str) -> str:
    """The text whose equations are checked: the reasoning block in `on` mode (or the whole
    completion when it has none), the whole completion in `off` mode."""
    if reasoning == "on" and THINK_CLOSE in completion:
        return completion.split(THINK_CLOSE, 1)[0]
    return completion


@reward("math_steps", runs_in="caller")  # as `math`
def math_steps_reward(sample: RewardSample, timeout_s: float = 5.0) -> RewardResult:
    """1.0 when the final answer is right (as the `math` reward) and no written equation is
    false; a right answer reached through a false equation scores 0."""
    answer = math_reward(sample, timeout_s=timeout_s)
    if answer.score < 1.0:
        return RewardResult(0.0, {**answer.info, "reason": answer.info.get("reason", "wrong answer")})
    wrong = false_equations(working(sample.completion, sample.reasoning))
    if wrong:
        return RewardResult(0.0, {"reason": "false equation in the working", "false_equations": wrong[:5]})
    return RewardResult(1.0, answer.info)


@reward("arithmetic")
def arithmetic_reward(sample: RewardSample) -> RewardResult:
    """The fraction of the working's equations that hold (0 when there are none).

    Why: partial credit for the steps. When no sample of a group reaches the right answer
    (common on multi-step problems for a small policy), the answer rewards give the group
    zero variance and GRPO learns nothing from it; this reward still ranks a working with
    one false step above one with three, on the arithmetic facts every level shares. It
    does not check that the operands come from the problem, so use it beside an answer
    reward, never alone. Measured on the tiny GRPO default at weight 0.5 beside `math_steps`,
    it rose while answer accuracy fell (benchmarks/RESULTS.md, GRPO session 3, run e2).
    """
    checked = checked_equations(working(sample.completion, sample.reasoning))
    if not checked:
        return RewardResult(0.0, {"reason": "no equation in the working"})
    wrong = [eq for eq, holds in checked if not holds]
    return RewardResult(1.0 - len(wrong) / len(checked), {"equations": len(checked), "false_equations": wrong[:5]})
