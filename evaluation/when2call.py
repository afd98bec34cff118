"""When2Call multiple-choice suite (METHODS §5): does the model know when (not) to call a tool?

Each test row offers four answers in the fixed order [direct, tool_call, request_for_info,
cannot_answer]; the gold one is never `direct`. The model picks the answer whose tokens
it finds most likely after the prompt (lm-eval `multiple_choice`, zero-shot, empty target
delimiter). Tools go into the user turn inside `<AVAILABLE_TOOLS>` and the tool-call choice
is re-rendered as `<TOOLCALL>[...]</TOOLCALL>`, the Llama-Nemotron syntax, because the
system turn only carries the reasoning toggle. In `on` mode the choice follows an empty
`<think></think>` block (context, not scored), as a reasoning model's answer would.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.chat import chat_settings, with_system_prompt
from core.data.loading import load_records
from core.data.schema import RowError
from core.tokenization import encode_prompt

CATEGORIES = ("direct", "tool_call", "request_for_info", "cannot_answer")
TOOL_CALL = CATEGORIES.index("tool_call")


@dataclass
class W2CItem:
    """One When2Call test question with its four candidate answers."""

    id: str
    question: str
    correct_answer: str
    answers: dict[str, str]
    tools: list[dict[str, Any]]
    source: str = "when2call"


def _parse_tool(tool: Any) -> dict[str, Any]:
    """Tools are stored as JSON strings in the released file; accept objects too."""
    if isinstance(tool, str):
        try:
            tool = json.loads(tool)
        except json.JSONDecodeError as e:
            raise RowError(f"key 'tools': a tool is not valid JSON ({e.msg})") from None
    if not isinstance(tool, dict) or "name" not in tool:
        raise RowError("key 'tools': each tool needs a 'name'")
    return tool


def validate_item(obj: Any, default_id: str) -> W2CItem:
    if not isinstance(obj, dict):
        raise RowError(f"expected a JSON object, got {type(obj).__name__}")
    for key in ("question", "correct_answer", "answers"):
        if key not in obj:
            raise RowError(f"key '{key}': missing")
    if obj["correct_answer"] not in CATEGORIES:
        raise RowError(f"key 'correct_answer': expected one of {CATEGORIES}, got {obj['correct_answer']!r}")
    answers = obj["answers"]
    if not isinstance(answers, dict) or set(answers) != set(CATEGORIES):
        raise RowError(f"key 'answers': expected exactly the keys {list(CATEGORIES)}")
    if not all(isinstance(a, str) for a in answers.values()):
        raise RowError("key 'answers': every answer must be a string")
    tools = obj.get("tools", [])
    if not isinstance(tools, list):
        raise RowError("key 'tools': expected a list")
    return W2CItem(id=str(obj.get("uuid", default_id)), question=str(obj["question"]),
                   correct_answer=obj["correct_answer"], answers=answers,
                   tools=[_parse_tool(t) for t in tools], source=str(obj.get("source", "when2call")))


def load_when2call(path: str | Path, on_error: str = "raise") -> list[W2CItem]:
    """Rows of a `when2call_test_mcq.jsonl`-format file; bad rows are named by file:line."""
    return load_records(path, validate_item, on_error).rows


def render_tool_call(answer: str) -> str:
    """`{"name", "arguments"}` JSON (or a list of them) -> `<TOOLCALL>[...]</TOOLCALL>`."""
    try:
        call = json.loads(answer)
    except json.JSONDecodeError:
        return answer  # already in some model syntax: score it as written
    calls = call if isinstance(call, list) else [call]
    return f"<TOOLCALL>{json.dumps(calls)}</TOOLCALL>"


def choices(item: W2CItem) -> list[str]:
    """The four continuations in CATEGORIES order, tool call in the model's syntax."""
    return [render_tool_call(item.answers[c]) if c == "tool_call" else item.answers[c] for c in CATEGORIES]


def prompt_messages(item: W2CItem, mode: str) -> list[dict[str, str]]:
    tools = json.dumps(item.tools)
    user = f"<AVAILABLE_TOOLS>{tools}</AVAILABLE_TOOLS>\n\n{item.question}"
    return with_system_prompt([{"role": "user", "content": user}], mode)


def choice_requests(tokenizer, item: W2CItem, mode: str) -> tuple[list[list[int]], list[int]]:
    """Token sequences (context + choice) and context lengths for `engine.prompt_logprobs`."""
    context = encode_prompt(tokenizer, prompt_messages(item, mode))
    if mode == "on":
        s = chat_settings(tokenizer)
        context = context + tokenizer(s.think_open + s.think_close, add_special_tokens=False)["input_ids"]
    seqs = [context + tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices(item)]
    return seqs, [len(context)] * len(seqs)


def score_items(engine, tokenizer, items: list[W2CItem], mode: str) -> list[dict[str, Any]]:
    """One record per item: summed log-likelihood and UTF-8 byte length of each choice."""
    seqs, lens, spans = [], [], []
    for item in items:
        s, l = choice_requests(tokenizer, item, mode)
        spans.append((len(seqs), len(seqs) + len(s)))
        seqs += s
        lens += l
    lps = engine.prompt_logprobs(seqs, lens) if seqs else []
    records = []
    for item, (a, b) in zip(items, spans):
        records.append({
            "id": item.id, "mode": mode, "gold": item.correct_answer, "n_tools": len(item.tools),
            "source": item.source,
            "choice_logprobs": [float(sum(lp)) for lp in lps[a:b]],
            "choice_bytes": [len(c.encode("utf-8")) for c in choices(item)],
        })
    return records


def predictions(record: dict[str, Any]) -> tuple[str, str]:
    """(argmax of log-likelihood, argmax of log-likelihood per byte) as category names."""
    lls, nbytes = record["choice_logprobs"], record["choice_bytes"]
    raw = max(range(len(lls)), key=lambda i: lls[i])
    norm = max(range(len(lls)), key=lambda i: lls[i] / max(nbytes[i], 1))
    return CATEGORIES[raw], CATEGORIES[norm]


def macro_f1(gold: list[str], pred: list[str]) -> float:
    """Unweighted mean of per-class F1 over every label seen in gold or predictions
    (sklearn's `f1_score(average="macro")`, which When2Call's scripts use)."""
    labels = sorted(set(gold) | set(pred))
    f1s = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred))
        fp = sum(g != label and p == label for g, p in zip(gold, pred))
        fn = sum(g == label and p != label for g, p in zip(gold, pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s) if f1s else 0.0


def confusion(gold: list[str], pred: list[str]) -> dict[str, dict[str, int]]:
    """counts[gold][predicted] over all four categories."""
    table = {g: {p: 0 for p in CATEGORIES} for g in CATEGORIES}
    for g, p in zip(gold, pred):
        table[g][p] += 1
    return table


def mcq_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """acc, acc_norm, macro-F1 (on the raw argmax, as the paper reports it, and on the
    normalised one), tool-hallucination rate and the confusion matrix.

    Tool hallucination: among items whose gold is `cannot_answer` and that offer no tool at
    all, the fraction where the model picked the tool call; None when there are no such items.
    """
    gold = [r["gold"] for r in records]
    raw, norm = zip(*(predictions(r) for r in records)) if records else ((), ())
    no_tool = [i for i, r in enumerate(records) if r["gold"] == "cannot_answer" and r["n_tools"] == 0]
    n = len(records)
    return {
        "n": n,
        "acc": sum(g == p for g, p in zip(gold, raw)) / n if n else 0.0,
        "acc_norm": sum(g == p for g, p in zip(gold, norm)) / n if n else 0.0,
        "macro_f1": macro_f1(gold, list(raw)),
        "macro_f1_norm": macro_f1(gold, list(norm)),
        "tool_hallucination_rate": (sum(raw[i] == "tool_call" for i in no_tool) / len(no_tool)
                                    if no_tool else None),
        "tool_hallucination_n": len(no_tool),
        "confusion": confusion(gold, list(raw)),
    }
