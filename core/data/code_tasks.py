"""Seeded "write a Python function" tasks with reference solutions and unit tests.

Families are small on purpose: a tiny model can learn them, and a reward can tell a right
program from a wrong one. Every reference is run against its tests (in a subprocess with
a timeout) before a row is emitted; that is our own trusted code, the sandbox in
`rewards/` is for model output.
"""
from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class CodeProblem:
    question: str
    entry_point: str
    solution: str  # the function source
    tests: list[str]  # assert statements
    plan: str  # one-sentence reasoning used as the think trace
    difficulty: int


_ARITH = {"add": ("plus", "+", lambda x, k: x + k, "Add {k} to x."),
          "times": ("times", "*", lambda x, k: x * k, "Multiply x by {k}.")}


def _arith(rng: random.Random) -> CodeProblem:
    name = rng.choice(sorted(_ARITH))
    word, sym, ref, plan = _ARITH[name]
    k = rng.randint(1 if name == "add" else 2, 9)
    f = f"{name}_{k}"
    xs = rng.sample(range(-5, 20), 3)
    return CodeProblem(f"Write a Python function {f}(x) that returns x {word} {k}.", f,
                       f"def {f}(x):\n    return x {sym} {k}\n", [f"assert {f}({x}) == {ref(x, k)}" for x in xs],
                       plan.format(k=k), 1)


_LIST_OPS = {
    "sum_list": ("the sum of the list xs", "return sum(xs)", sum, "Use sum."),
    "max_list": ("the largest item of the list xs", "return max(xs)", max, "Use max."),
    "min_list": ("the smallest item of the list xs", "return min(xs)", min, "Use min."),
    "count_even": ("how many items of the list xs are even",
                   "return sum(1 for x in xs if x % 2 == 0)",
                   lambda xs: sum(1 for x in xs if x % 2 == 0), "Count x with x % 2 == 0."),
}


def _list_op(rng: random.Random) -> CodeProblem:
    f = rng.choice(sorted(_LIST_OPS))
    text, body, ref, plan = _LIST_OPS[f]
    cases = [[rng.randint(-9, 9) for _ in range(rng.randint(1, 5))] for _ in range(3)]
    return CodeProblem(f"Write a Python function {f}(xs) that returns {text}.", f,
                       f"def {f}(xs):\n    {body}\n", [f"assert {f}({c}) == {ref(c)}" for c in cases],
                       plan, 2)


def _string_op(rng: random.Random) -> CodeProblem:
    ops = {
        "reverse": ("the string s reversed", "return s[::-1]", lambda s: s[::-1], "Slice with step -1."),
        "upper": ("the string s in upper case", "return s.upper()", str.upper, "Use upper."),
        "double": ("the string s repeated twice", "return s * 2", lambda s: s * 2, "Multiply s by 2."),
    }
    f = rng.choice(sorted(ops))
    text, body, ref, plan = ops[f]
    words = rng.sample(["cat", "dog", "sun", "map", "tree", "code", "ab"], 3)
    return CodeProblem(f"Write a Python function {f}(s) that returns {text}.", f,
                       f"def {f}(s):\n    {body}\n", [f"assert {f}({w!r}) == {ref(w)!r}" for w in words],
                       plan, 2)


FAMILIES = [_arith, _list_op, _string_op]


def run_tests(solution: str, tests: list[str], timeout: float = 10.0) -> bool:
    program = solution + "\n" + "\n".join(tests) + "\n"
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=timeout)
    return proc.returncode == 0


def generate(n: int, seed: int) -> list[CodeProblem]:
    rng = random.Random(seed)
    out = [FAMILIES[i % len(FAMILIES)](rng) for i in range(n)]
    # One subprocess checks every reference (each in its own namespace); the program goes
    # through stdin, since thousands of tasks overflow a command line.
    checks = "\n".join(f"exec({(p.solution + chr(10) + chr(10).join(p.tests))!r}, {{}})" for p in out)
    proc = subprocess.run([sys.executable, "-"], input=checks.encode(), capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"a reference solution failed its tests: {proc.stderr.decode()[-500:]}")
    return out


def answer_block(problem: CodeProblem) -> str:
    return f"```python\n{problem.solution}```"
