"""Build the embedded default data sets: task rows in the `core/data/schema.py` schema.

Each problem becomes rows in both reasoning modes when asked (`paired`), which is what the
SFT mix needs; RL and evaluation use prompt-only rows with the same reward specs.
"""
from __future__ import annotations

from typing import Iterator

from core.chat import ChatSettings, format_response
from core.data import code_tasks, math_tasks


def math_rows(n: int, seed: int, modes: tuple[str, ...] = ("on", "off"), with_response: bool = True,
              levels: tuple[int, ...] = (1, 2, 3, 4), split: str = "train",
              settings: ChatSettings | None = None) -> list[dict]:
    """`settings`: the checkpoint's think tags for `on` responses (default `<think>`)."""
    rows = []
    for i, p in enumerate(math_tasks.generate(n, seed, levels)):
        for mode in modes:
            messages = [{"role": "user", "content": p.question}]
            if with_response:
                content = format_response(math_tasks.final_answer(p), mode, math_tasks.thought(p), settings)
                messages.append({"role": "assistant", "content": content})
            rows.append({
                "id": f"math-{split}-{seed}-{i}-{mode}",
                "messages": messages,
                "reasoning": mode,
                "reward": {"type": "math", "answer": math_tasks.format_number(p.answer)},
                "meta": {"source": "synthetic-math", "difficulty": p.difficulty},
            })
    return rows


def code_rows(n: int, seed: int, modes: tuple[str, ...] = ("on", "off"), with_response: bool = True,
              split: str = "train", settings: ChatSettings | None = None) -> list[dict]:
    rows = []
    for i, p in enumerate(code_tasks.generate(n, seed)):
        for mode in modes:
            messages = [{"role": "user", "content": p.question}]
            if with_response:
                messages.append({"role": "assistant",
                                 "content": format_response(code_tasks.answer_block(p), mode, p.plan, settings)})
            rows.append({
                "id": f"code-{split}-{seed}-{i}-{mode}",
                "messages": messages,
                "reasoning": mode,
                "reward": {"type": "code", "entry_point": p.entry_point, "tests": p.tests},
                "meta": {"source": "synthetic-code", "difficulty": p.difficulty},
            })
    return rows


def corpus(n_math: int = 2000, n_code: int = 600, seed: int = 1234) -> Iterator[str]:
    """Texts the tokenizer is trained on: the chat scaffolding, questions and responses."""
    from core.chat import SYSTEM_PROMPTS

    for _ in range(50):
        yield from ("system", "user", "assistant", *SYSTEM_PROMPTS.values())
    for row in math_rows(n_math, seed) + code_rows(n_code, seed):
        for m in row["messages"]:
            yield m["content"]
