"""Seeded arithmetic word problems with exact answers and worked solutions.

Difficulty is the number of arithmetic steps (1-4); level 4 mixes in fractions. The worked
solution (one equation per step) becomes the `<think>` trace, so a small model can learn
that writing the steps out helps on the harder levels, which is the shape the reasoning
toggle should show. Every answer is checked with sympy before a row is emitted.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

import sympy

NAMES = ["Ana", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Ida", "Jon", "Kim"]
ITEMS = ["apples", "books", "coins", "pens", "cards", "shells", "stamps", "marbles"]


@dataclass(frozen=True)
class MathProblem:
    question: str
    steps: list[str]  # one "a op b = c" equation per step, in order
    answer: Fraction
    expression: str  # the whole computation as one sympy-parsable expression
    difficulty: int


def format_number(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _problem(rng: random.Random, difficulty: int) -> MathProblem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    # Small operands: each single step is easy to learn, so difficulty comes from the number
    # of steps, which is where writing the steps out (the `on` mode) should pay off.
    total = Fraction(rng.randint(2, 9))
    question = [f"{name} has {format_number(total)} {item}."]
    steps: list[str] = []
    expr = format_number(total)
    n_ops = min(difficulty, 3)
    for _ in range(n_ops):
        op = rng.choice(["add", "sub", "mul"] if total <= 9 else ["add", "sub"])
        if op == "add":
            k = Fraction(rng.randint(1, 9))
            question.append(f"{name} gets {format_number(k)} more.")
            new, sym = total + k, "+"
        elif op == "sub" and total > 1:
            k = Fraction(rng.randint(1, min(int(total) - 1, 9)))
            question.append(f"{name} gives away {format_number(k)}.")
            new, sym = total - k, "-"
        else:
            k = Fraction(rng.randint(2, 3))
            question.append(f"{name} multiplies the {item} by {format_number(k)}.")
            new, sym = total * k, "*"
        steps.append(f"{format_number(total)} {sym} {format_number(k)} = {format_number(new)}")
        expr = f"({expr}) {sym} {format_number(k)}"
        total = new
    if difficulty >= 4:
        k = Fraction(rng.randint(2, 3))
        question.append(f"{name} splits them into {format_number(k)} equal parts.")
        new = total / k
        steps.append(f"{format_number(total)} / {format_number(k)} = {format_number(new)}")
        expr = f"({expr}) / {format_number(k)}"
        total = new
        question.append(f"How many {item} are in one part?")
    else:
        question.append(f"How many {item} does {name} have now?")
    return MathProblem(" ".join(question), steps, total, expr, difficulty)


def verify(problem: MathProblem) -> None:
    """Check the stated answer against sympy's evaluation of the whole computation."""
    value = sympy.nsimplify(sympy.sympify(problem.expression))
    if sympy.Rational(problem.answer.numerator, problem.answer.denominator) != value:
        raise AssertionError(f"answer {problem.answer} != {value} for {problem.expression}")


def generate(n: int, seed: int, levels: tuple[int, ...] = (1, 2, 3, 4)) -> list[MathProblem]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = _problem(rng, levels[i % len(levels)])
        verify(p)
        out.append(p)
    return out


def thought(problem: MathProblem) -> str:
    return " ".join(f"{s}." for s in problem.steps)


def final_answer(problem: MathProblem) -> str:
    return f"The answer is \\boxed{{{format_number(problem.answer)}}}."
