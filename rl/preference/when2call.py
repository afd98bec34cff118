"""When2Call-style preference pairs (METHODS §5): knowing when (not) to call a tool.

`pairs_from_items` follows the paper's RPO recipe on items in the When2Call MCQ layout
({question, correct_answer, answers{direct, tool_call, request_for_info, cannot_answer},
tools}): chosen = the correct option, rejected = one of the other three drawn uniformly;
plus, 1:1 on tool-call items, corrupted calls (a required argument dropped, a wrong
value) as rejected against the correct call. `synthetic_items` builds such items from a
small tool catalogue so the tiny default needs nothing downloaded. Prompts and tool calls
are rendered as evaluation.when2call scores them (<AVAILABLE_TOOLS>, <TOOLCALL>[...]).
"""
from __future__ import annotations

import json
import random
from typing import Any

from rl.preference.data import PreferencePair, tool_prompt

CATEGORIES = ("direct", "tool_call", "request_for_info", "cannot_answer")

# name -> ({param: sample values}, question template, direct-answer template)
CATALOGUE: dict[str, tuple[dict[str, list[str]], str, str]] = {
    "get_weather": ({"city": ["Paris", "Oslo", "Lima", "Cairo"], "unit": ["celsius", "fahrenheit"]},
                    "What is the weather in {city} in {unit}?", "It is sunny and 21 degrees in {city}."),
    "convert_currency": ({"amount": ["10", "25", "300"], "source": ["USD", "EUR"], "target": ["JPY", "GBP"]},
                         "How much is {amount} {source} in {target}?", "{amount} {source} is about 42 {target}."),
    "book_table": ({"restaurant": ["Luigi", "Sakura", "Casa"], "people": ["2", "4", "6"]},
                   "Book a table at {restaurant} for {people} people.", "Your table at {restaurant} is booked."),
    "count_items": ({"name": ["Ana", "Ben", "Cleo"], "item": ["apples", "books", "coins"]},
                    "How many {item} does {name} have?", "{name} has 12 {item}."),
}
# Questions that leave one required argument out (request_for_info items).
MISSING = {"get_weather": ("city", "What is the weather in {unit}?"),
           "convert_currency": ("amount", "How much is it in {target} if I pay in {source}?"),
           "book_table": ("people", "Book a table at {restaurant}."),
           "count_items": ("name", "How many {item} are there?")}
# Questions no offered tool can answer (cannot_answer items: the target tool is removed).
UNANSWERABLE = {"get_weather": "Will it rain in {city} next year on this day?",
                "convert_currency": "What will the {source} to {target} rate be next month?",
                "book_table": "Is the food at {restaurant} any good?",
                "count_items": "Why does {name} like {item}?"}


def tool_spec(name: str) -> dict[str, Any]:
    """A compact spec (name and required arguments): the tiny model's context is short."""
    return {"name": name, "required": list(CATALOGUE[name][0])}


def render_call(call: dict[str, Any]) -> str:
    return f"<TOOLCALL>{json.dumps([call])}</TOOLCALL>"


def synthetic_items(n: int, seed: int) -> list[dict[str, Any]]:
    """When2Call MCQ-layout items, the three correct categories in turn."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        name = rng.choice(list(CATALOGUE))
        params, question, direct = CATALOGUE[name]
        args = {p: rng.choice(v) for p, v in params.items()}
        others = [t for t in CATALOGUE if t != name]
        correct = CATEGORIES[1 + i % 3]
        tools = [name] + rng.sample(others, rng.randint(0, 1))
        if correct == "request_for_info":
            missing, question = MISSING[name]
        elif correct == "cannot_answer":
            missing, question = "", UNANSWERABLE[name]
            tools = rng.sample(others, rng.randint(0, 1))  # the target tool is not offered
        else:
            missing = ""
        rng.shuffle(tools)
        call = {"name": name, "arguments": args}
        items.append({
            "uuid": f"w2c-synth-{seed}-{i}", "question": question.format(**args), "correct_answer": correct,
            "answers": {"direct": direct.format(**args), "tool_call": json.dumps(call),
                        "request_for_info": f"Could you tell me the {missing or 'details'} you have in mind?",
                        "cannot_answer": "I cannot answer that with the tools I have."},
            "tools": [json.dumps(tool_spec(t)) for t in tools], "target_tool": name,
        })
    return items


def _answer(item: dict[str, Any], category: str) -> str:
    text = item["answers"][category]
    return render_call(json.loads(text)) if category == "tool_call" else text


def _corruptions(call: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    args = call["arguments"]
    out = []
    if len(args) >= 2:
        dropped = rng.choice(list(args))
        out.append({"name": call["name"], "arguments": {k: v for k, v in args.items() if k != dropped}})
    key = rng.choice(list(args))
    out.append({"name": call["name"], "arguments": {**args, key: f"{args[key]}x"}})
    return out


def reward_spec(item: dict[str, Any]) -> dict[str, Any]:
    """The `tool` reward's spec for an item (rewards/builtin/tool.py)."""
    spec = {"type": "tool", "correct": item["correct_answer"], "tools": item["tools"]}
    if item["correct_answer"] == "tool_call":
        spec["call"] = json.loads(item["answers"]["tool_call"])
    return spec


def pairs_from_items(items: list[dict[str, Any]], seed: int, corruption_ratio: float = 1.0,
                     reasoning: str = "off") -> list[PreferencePair]:
    rng = random.Random(seed)
    pairs = []
    for item in items:
        prompt = [{"role": "user", "content": tool_prompt(item["tools"], item["question"])}]
        correct = item["correct_answer"]
        meta = {"source": "when2call", "reward": reward_spec(item)}
        negative = rng.choice([c for c in CATEGORIES if c != correct])
        pairs.append(PreferencePair(f"{item['uuid']}-cat", prompt, _answer(item, correct), _answer(item, negative),
                                    1.0, 0.0, reasoning, meta))
        if correct == "tool_call" and rng.random() < corruption_ratio:
            call = json.loads(item["answers"]["tool_call"])
            pairs.append(PreferencePair(f"{item['uuid']}-call", prompt, render_call(call),
                                        render_call(rng.choice(_corruptions(call, rng))), 1.0, 0.0, reasoning, meta))
    return pairs
