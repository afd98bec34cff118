"""Tool-use SFT traces: synthetic math solved with calculator calls, rendered the way the
tool environment (rl/tool_environment.py) plays episodes at RL time.

One row per problem and mode, from the same generator as core/data/synth.py's math rows.
The first user turn carries the tools block the environment shows (rl/turns.py's
`tools_block`, for templates that do not take a `tools` argument, like the embedded one);
then the assistant asks the calculator for each step of the worked solution in turn
(`<TOOLCALL>[{"name": "calculator", "arguments": {"expression": "5 + 7"}}]</TOOLCALL>`, an
empty think block first in `on` mode), each followed by the `tool` turn holding the
calculator's real answer, and the last assistant turn copies the last answer into the boxed
answer. So the policy writes operands and copies results; the tool does every fact.

Why: the tiny policy's remaining errors are single-digit facts with a carry; a call writes
the operands and lets the tool do the fact. sft/packing.py trains assistant turns only
(the loss mask), so the tool turns and the prompt carry no loss, as in the RL episode.
"""
from __future__ import annotations

from core.chat import ChatSettings, format_response
from core.data import math_tasks
from rl.tools import ToolCall, get_tool, render_calls
from rl.turns import tools_block

DOMAIN = "tools"  # meta.domain: the SFT mix weights tool traces under this name


def step_expression(step: str) -> str:
    """`"5 + 7 = 12"` -> `"5 + 7"`: the left side of a worked-solution equation."""
    left, sep, _ = step.partition(" = ")
    if not sep:
        raise ValueError(f"worked step {step!r} is not an equation 'a op b = c'")
    return left


def tool_math_rows(n: int, seed: int, modes: tuple[str, ...] = ("on",), levels: tuple[int, ...] = (1, 2, 3, 4),
                   split: str = "train", settings: ChatSettings | None = None, tools_shown: str = "specs") -> list[dict]:
    """Rows in the task-row schema whose messages are the whole tool-use conversation; the tools
    are listed as the environment with the same `tools_shown` lists them."""
    calculator = get_tool("calculator")
    head = tools_block([calculator.spec()], tools_shown)
    rows = []
    for i, p in enumerate(math_tasks.generate(n, seed, levels)):
        for mode in modes:
            messages = [{"role": "user", "content": head + p.question}]
            result = ""
            for step in p.steps:
                expression = step_expression(step)
                call = render_calls([ToolCall(calculator.name, {"expression": expression})])
                result = calculator.fn(expression)
                messages.append({"role": "assistant", "content": format_response(call, mode, "", settings)})
                messages.append({"role": "tool", "name": calculator.name, "content": result})
            messages.append({"role": "assistant", "content": format_response(
                f"The answer is \\boxed{{{result}}}.", mode, "", settings)})
            rows.append({
                "id": f"toolmath-{split}-{seed}-{i}-{mode}",
                "messages": messages,
                "reasoning": mode,
                "reward": {"type": "math", "answer": math_tasks.format_number(p.answer)},
                "meta": {"source": "synthetic-tool-math", "domain": DOMAIN, "difficulty": p.difficulty},
            })
    return rows
