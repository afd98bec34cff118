"""The tiny default preference data, built from the project's synthetic tasks.

- math: the worked solution with the right answer vs. the same solution whose last step
  is miscomputed (so the rejected response is as fluent as the chosen one);
- instruction following: a response meeting the prompt's constraint vs. one breaking it,
  with mirrored instructions (lowercase / ALL CAPS, short / long, ...) so the preference
  can only be learned by reading the instruction; rewards are the `if` reward's checks;
- tool calls: rl.preference.when2call.

Each builder also yields prompt rows (with reward specs) for online sampling.
"""
from __future__ import annotations

import random
from fractions import Fraction

from core.chat import format_response
from core.data import math_tasks
from core.data.schema import Row
from rl.preference.data import PreferencePair

MATH_MODES = ("on", "off")


def _wrong(problem: math_tasks.MathProblem, rng: random.Random) -> tuple[str, str]:
    """(thought, answer) with the last step's result off by a small amount."""
    delta = Fraction(rng.choice([-3, -2, -1, 1, 2, 3]))
    wrong = problem.answer + delta if problem.answer + delta > 0 else problem.answer + abs(delta)
    *head, last = problem.steps
    last = f"{last.rsplit('=', 1)[0]}= {math_tasks.format_number(wrong)}"
    thought = " ".join(f"{s}." for s in [*head, last])
    return thought, f"The answer is \\boxed{{{math_tasks.format_number(wrong)}}}."


def math_pairs(n: int, seed: int, levels: tuple[int, ...] = (1, 2, 3, 4)) -> list[PreferencePair]:
    rng = random.Random(seed)
    pairs = []
    for i, p in enumerate(math_tasks.generate(n, seed, levels)):
        # problem i has level levels[i % len(levels)]; the mode alternates per round of levels so
        # both modes cover every level (i % 2 would tie `off` to the even levels only)
        mode = MATH_MODES[(i // len(levels)) % 2]
        thought, answer = _wrong(p, rng)
        pairs.append(PreferencePair(
            f"math-pair-{seed}-{i}-L{p.difficulty}", [{"role": "user", "content": p.question}],
            format_response(math_tasks.final_answer(p), mode, math_tasks.thought(p)),
            format_response(answer, mode, thought), 1.0, 0.0, mode,
            {"source": "synthetic-math", "reward": {"type": "math", "answer": math_tasks.format_number(p.answer)}}))
    return pairs


def _sentence(rng: random.Random, words: int) -> str:
    name, item = rng.choice(math_tasks.NAMES), rng.choice(math_tasks.ITEMS)
    base = [name, "has", str(rng.randint(2, 30)), item, "and", "gives", str(rng.randint(1, 9)), "away"]
    extra = ["then", rng.choice(math_tasks.NAMES), "gets", str(rng.randint(1, 9)), "more", item]
    out = list(base)
    while len(out) < words:
        out += extra
    return " ".join(out[:max(words, 3)]) + "."


# (instruction, constraint, transform that satisfies it, transform that breaks it)
def _if_cases(rng: random.Random) -> list[tuple[str, dict, str, str]]:
    short, long = _sentence(rng, 6), _sentence(rng, 24)
    plain = _sentence(rng, 9)
    item = rng.choice(math_tasks.ITEMS)
    other = rng.choice([i for i in math_tasks.ITEMS if i != item])
    return [
        ("Answer using only lowercase letters.", {"kind": "lowercase"}, plain.lower(), plain.upper()),
        ("Answer in ALL CAPITAL LETTERS.", {"kind": "uppercase"}, plain.upper(), plain.lower()),
        ("Answer in at most 8 words.", {"kind": "max_words", "n": 8}, short, long),
        ("Answer in at least 20 words.", {"kind": "min_words", "n": 20}, long, short),
        ("Start your answer with 'Note:'.", {"kind": "starts_with", "phrase": "Note:"}, f"Note: {plain}",
         f"{plain} Note"),
        ("End your answer with 'Done!'.", {"kind": "ends_with", "phrase": "Done!"}, f"{plain} Done!",
         f"Done! {plain}"),
        (f"Mention the word '{item}'.", {"kind": "include_keywords", "keywords": [item]},
         plain.rsplit(" ", 1)[0] + f" {item}.", plain.replace(item, other).rsplit(" ", 1)[0] + f" {other}."),
        ("Do not use any commas.", {"kind": "no_commas"}, plain, plain.replace(" and ", ", and ").replace(" ", ", ", 2)),
    ]


def if_pairs(n: int, seed: int) -> list[PreferencePair]:
    from rewards.builtin.ifeval import check

    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        cases = _if_cases(rng)
        instruction, constraint, good, bad = cases[i % len(cases)]
        topic = _sentence(rng, 8)
        prompt = [{"role": "user", "content": f"Tell me about this: {topic} {instruction}"}]
        good_r, bad_r = float(check(good, constraint)), float(check(bad, constraint))
        if good_r <= bad_r:
            raise AssertionError(f"synthetic IF pair {i} does not separate: {constraint} on {good!r} / {bad!r}")
        pairs.append(PreferencePair(f"if-pair-{seed}-{i}", prompt, good, bad, good_r, bad_r, "off",
                                    {"source": "synthetic-if", "reward": {"type": "if", "constraints": [constraint]}}))
    return pairs


def prompt_rows(pairs: list[PreferencePair]) -> list[Row]:
    """The pairs' prompts as task rows (reward spec from `meta.reward`) for online sampling."""
    return [Row(p.id, list(p.prompt), p.reasoning or "on", p.meta["reward"], {"source": p.meta.get("source", "")})
            for p in pairs if isinstance(p.prompt, list) and "reward" in p.meta]
