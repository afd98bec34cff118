"""Data layouts users already have, mapped onto the toolkit's task rows (core.data.schema).

    messages   today's schema: {"messages": [...], "reasoning", "reward", ...} (OpenAI chat)
    nemotron   the Llama-Nemotron post-training layout: {"input": [messages] | "user text",
               "output": "assistant text", "reasoning": "on"|"off", "system_prompt":
               "detailed thinking on"|..., "category": "math"|"code"|..., "license", ...}
    columns    any table (HF `save_to_disk` folder, parquet, JSONL, CSV) mapped by column
               names, e.g. a question / answer set whose gold answer follows `#### `

`auto` tells `messages` from `nemotron` row by row; `columns` needs its mapping. Every
conversion error is a RowError naming the key, which the loader prefixes with file:line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.chat import SYSTEM_PROMPTS, format_response
from core.data.schema import REASONING_MODES, Row, RowError, validate_row

KINDS = ("auto", "messages", "nemotron", "columns")
RESPONSE_FORMATS = ("as_is", "think_answer")
# Llama-Nemotron post-training keys besides the conversation (kept in meta)
_NEMOTRON_META = ("category", "license", "generator", "used_in_training", "version")


@dataclass
class Layout:
    """How one data file's rows become task rows (a config section: `data.layout`)."""

    kind: str = field(default="auto", metadata={"help": (
        "auto (messages or nemotron, per row) | messages | nemotron | columns")})
    prompt: str = field(default="question", metadata={"help": "columns: the user turn"})
    response: str = field(default="", metadata={"help": (
        "columns: the assistant turn ('' = prompt-only rows, for RL / evaluation)")})
    answer: str = field(default="", metadata={"help": (
        "columns: the gold answer (a math reward); may be the response column")})
    answer_after: str = field(default="", metadata={"help": (
        "columns: the gold answer is the text after this marker's last occurrence, e.g. \"#### \"")})
    response_format: str = field(default="as_is", metadata={"help": (
        "columns: as_is | think_answer (<think>text before the marker</think>The answer is \\boxed{gold}.)")})
    system: str = field(default="", metadata={"help": (
        "columns: a system-prompt column (kept only if it is a reasoning toggle)")})
    reasoning: str = field(default="on", metadata={"help": (
        "columns: the mode of every row, unless reasoning_column is set")})
    reasoning_column: str = field(default="", metadata={"help": "columns: a column holding each row's mode (on | off)"})
    reward_type: str = field(default="math", metadata={"help": (
        "columns: the reward spec's type; \"math\" takes `answer` as the gold answer")})
    id_column: str = field(default="", metadata={"help": "columns: a row id ('' = file:line)"})

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"data.layout.kind: expected one of {KINDS}, got {self.kind!r}")
        if self.response_format not in RESPONSE_FORMATS:
            raise ValueError(f"data.layout.response_format: expected one of {RESPONSE_FORMATS}, "
                             f"got {self.response_format!r}")
        if self.reasoning not in REASONING_MODES:
            raise ValueError(f"data.layout.reasoning: expected 'on' or 'off', got {self.reasoning!r}")
        if self.response_format == "think_answer" and not self.answer_after:
            raise ValueError("data.layout.response_format=think_answer needs data.layout.answer_after")


def _string(obj: dict, key: str) -> str:
    value = obj.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise RowError(f"key '{key}': expected a non-empty string, got {value!r}")
    return value


def _mode(value: Any, key: str) -> str:
    if value not in REASONING_MODES:
        raise RowError(f"key '{key}': expected 'on' or 'off', got {value!r}")
    return value


def from_nemotron(obj: dict, default_id: str) -> Row:
    """A Llama-Nemotron post-training row: `input` turns + `output` as the assistant turn."""
    for key in ("input", "output", "reasoning"):
        if key not in obj:
            raise RowError(f"key '{key}': missing (Llama-Nemotron layout: input, output, reasoning, system_prompt)")
    turns = obj["input"]
    if isinstance(turns, str):
        turns = [{"role": "user", "content": turns}]
    if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
        raise RowError("key 'input': expected the user text or a non-empty list of {role, content}")
    mode = _mode(obj["reasoning"], "reasoning")
    system = obj.get("system_prompt")
    if system is not None and system in SYSTEM_PROMPTS.values() and system != SYSTEM_PROMPTS[mode]:
        raise RowError(f"key 'system_prompt': {system!r} contradicts reasoning {mode!r}")
    meta = {k: obj[k] for k in _NEMOTRON_META if k in obj}
    if "category" in obj:
        meta["domain"] = str(obj["category"])
    # SFT data: no verifiable answer is given, so the reward spec only names the category
    return validate_row({"id": str(obj.get("id", obj.get("uuid", default_id))),
                         "messages": [*turns, {"role": "assistant", "content": _string(obj, "output")}],
                         "reasoning": mode, "reward": {"type": "none"}, "meta": meta}, default_id)


def _gold(layout: Layout, obj: dict) -> tuple[str | None, str]:
    """(text before the marker, gold answer) from the answer column."""
    text = _string(obj, layout.answer)
    if not layout.answer_after:
        return None, text.strip()
    if layout.answer_after not in text:
        raise RowError(f"key '{layout.answer}': no {layout.answer_after!r} marker before the final answer")
    before, after = text.rsplit(layout.answer_after, 1)
    if not after.strip():
        raise RowError(f"key '{layout.answer}': nothing after {layout.answer_after!r}")
    return before.strip(), after.strip().replace(",", "")


def from_columns(layout: Layout, obj: dict, default_id: str) -> Row:
    """A table row through the column mapping."""
    mode = _mode(obj.get(layout.reasoning_column), layout.reasoning_column) if layout.reasoning_column \
        else layout.reasoning
    messages = [{"role": "user", "content": _string(obj, layout.prompt)}]
    if layout.system and obj.get(layout.system) in SYSTEM_PROMPTS.values():
        mode = {v: k for k, v in SYSTEM_PROMPTS.items()}[obj[layout.system]]
    reward: dict[str, Any] = {"type": layout.reward_type}
    thought = None
    if layout.answer:
        thought, reward["answer"] = _gold(layout, obj)
    elif layout.reward_type == "math":
        raise RowError("data.layout.answer: a math reward needs the gold-answer column")
    if layout.response:
        if layout.response_format == "think_answer":
            content = format_response(f"The answer is \\boxed{{{reward['answer']}}}.", mode, thought)
        else:
            content = _string(obj, layout.response)
        messages.append({"role": "assistant", "content": content})
    rid = str(obj[layout.id_column]) if layout.id_column and obj.get(layout.id_column) is not None else default_id
    return validate_row({"id": rid, "messages": messages, "reasoning": mode, "reward": reward}, default_id)


def to_row(layout: Layout, obj: Any, default_id: str) -> Row:
    """One decoded record -> a validated Row, or a RowError naming the key."""
    if not isinstance(obj, dict):
        raise RowError(f"expected an object, got {type(obj).__name__}")
    kind = layout.kind
    if kind == "auto":
        if "messages" in obj:
            kind = "messages"
        elif "input" in obj and "output" in obj:
            kind = "nemotron"
        else:
            raise RowError(f"cannot tell the layout from keys {sorted(obj)[:8]}: expected 'messages' (OpenAI chat) "
                           "or 'input'+'output' (Llama-Nemotron); other tables need data.layout.kind=columns "
                           "and a column mapping")
    if kind == "messages":
        return validate_row(obj, default_id)
    if kind == "nemotron":
        return from_nemotron(obj, default_id)
    return from_columns(layout, obj, default_id)


def main(argv: list[str] | None = None) -> int:
    """`python -m core.data.layouts SRC OUT.jsonl [kind=columns prompt=question ...]`: convert
    any layout into task-row JSONL (what GRPO and evaluation read). Exit 1 if rows were skipped."""
    import sys

    from core.config import ConfigError, load_config
    from core.data.loading import DataError, load_rows, write_jsonl

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or "=" in args[0] or "=" in args[1]:
        print(main.__doc__, file=sys.stderr)
        return 2
    try:
        report = load_rows(args[0], on_error="skip", layout=load_config(Layout, None, args[2:]))
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_jsonl(args[1], report.rows)
    print(f"{args[1]}: {len(report.rows)} rows, {len(report.skipped)} malformed rows skipped")
    return 1 if report.skipped else 0


if __name__ == "__main__":
    raise SystemExit(main())
