"""The built-in tools: a calculator and Python execution in the code sandbox.

Both bound their own work, so they run on the caller's threads (`runs_in="caller"`): the
calculator evaluates a parsed arithmetic tree (no `eval`, bounded powers and sizes), and
`python` runs the code in rewards.sandbox, whose wall-clock deadline kills the whole run.
"""
from __future__ import annotations

import ast
import operator
import threading
from fractions import Fraction

from rl.tools.registry import tool

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPONENT = 64
MAX_DIGITS = 64
MAX_LENGTH = 256


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if right.denominator != 1 or abs(right) > MAX_EXPONENT:
                raise ValueError(f"exponents must be whole numbers up to {MAX_EXPONENT}")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ValueError("division by zero")
        value = _BINARY[type(node.op)](left, right)
        if len(str(abs(value.numerator))) > MAX_DIGITS or len(str(value.denominator)) > MAX_DIGITS:
            raise ValueError(f"result has more than {MAX_DIGITS} digits")
        return value
    raise ValueError(f"unsupported syntax {type(node).__name__}: only numbers, + - * / // % ** and parentheses")


def format_number(value: Fraction) -> str:
    """Whole numbers as integers, others as exact fractions' decimal value (up to 12 digits)."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.12g}"


def evaluate(expression: str) -> str:
    """Exact arithmetic on a parsed tree; ValueError names what is not allowed."""
    if len(expression) > MAX_LENGTH:
        raise ValueError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"not an arithmetic expression ({e.msg})") from None
    return format_number(_eval(tree))


@tool("calculator", runs_in="caller", parameters={
    "type": "object", "properties": {"expression": {"type": "string", "description": "e.g. 5 + 7 * (3 - 1)"}},
    "required": ["expression"]})
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression: numbers, + - * / // % ** and parentheses."""
    return evaluate(str(expression))


_sandbox = None
_sandbox_lock = threading.Lock()


def _get_sandbox():
    """One Sandbox per process (its backend probe runs once); thread-safe by design."""
    global _sandbox
    with _sandbox_lock:
        if _sandbox is None:
            from rewards.sandbox import Sandbox

            _sandbox = Sandbox()
        return _sandbox


PYTHON_TIMEOUT_S = 5.0
# The sandbox stops the program at PYTHON_TIMEOUT_S itself; the runner waits that long plus
# the sandbox's start-up, so a slow start on a loaded machine is never reported as a timeout
# of the tool while the program it started is still running.
PYTHON_CALL_TIMEOUT_S = PYTHON_TIMEOUT_S + 10.0


@tool("python", runs_in="caller", timeout_s=PYTHON_CALL_TIMEOUT_S, parameters={
    "type": "object", "properties": {"code": {"type": "string", "description": "a Python program; print the result"}},
    "required": ["code"]})
def python(code: str) -> str:
    """Run a Python program in a sandbox (no network, no files kept) and return what it printed."""
    from rewards.sandbox import Limits

    verdict = _get_sandbox().run(str(code), limits=Limits(timeout_s=PYTHON_TIMEOUT_S, cpu_s=int(PYTHON_TIMEOUT_S)))
    if verdict.ok:
        return verdict.stdout
    if verdict.timed_out:
        reason = f"timed out after {PYTHON_TIMEOUT_S}s"
    elif verdict.resource:
        reason = f"stopped by the {verdict.resource} limit"
    else:
        reason = f"exit code {verdict.exit_code}" if verdict.exit_code is not None else f"signal {verdict.signal}"
    err = verdict.stderr.strip().splitlines()[-1:] if verdict.stderr.strip() else []
    return verdict.stdout + f"[error: {reason}{': ' + err[0] if err else ''}]"
