"""Task suites and the prompts a run evaluates.

A task is named in the config as:
  `math`, `code`            the synthetic test split (core.data.synth, split="test")
  `ifeval`                  the built-in instruction-following prompts (evaluation/ifeval_suite.py)
  `when2call:PATH`          a When2Call-format MCQ file, scored by log-likelihood
  `PATH` (.jsonl etc.)      any task rows with a reward spec; the suite is the file stem

Every suite is evaluated in every configured mode, so a prompt's `on` and `off` results
share its id and can be compared directly. A user row's own `reasoning` field is honoured
only with `respect_row_reasoning` (for files that already list each problem per mode).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from core.data.loading import load_rows
from core.data.schema import Row, validate_row
from core.data.synth import code_rows, math_rows
from evaluation.ifeval_suite import ifeval_rows
from evaluation.when2call import W2CItem, load_when2call


@dataclass(frozen=True)
class Suite:
    name: str
    kind: str  # "generate": sample and score with rewards; "mcq": log-likelihood choice
    items: list  # list[Row] for "generate", list[W2CItem] for "mcq"
    skipped: int = 0  # malformed rows skipped while loading
    respect_row_reasoning: bool = False


@dataclass(frozen=True)
class Job:
    """One prompt in one mode: the unit that is generated, scored, stored and resumed."""

    key: str
    suite: str
    kind: str
    mode: str
    item: Row | W2CItem


def _synthetic(rows: list[dict]) -> list[Row]:
    """Rows built for the `on` mode only, with the mode suffix dropped from their ids."""
    out = []
    for r in rows:
        row = validate_row(r, r["id"])
        row.id = row.id.removesuffix("-on")
        out.append(row)
    return out


def load_suite(task: str, num_math: int, num_code: int, synth_seed: int, on_error: str = "skip",
               respect_row_reasoning: bool = False) -> Suite:
    if task == "math":
        return Suite("math", "generate", _synthetic(
            math_rows(num_math, synth_seed, modes=("on",), with_response=False, split="test")))
    if task == "code":
        return Suite("code", "generate", _synthetic(
            code_rows(num_code, synth_seed, modes=("on",), with_response=False, split="test")))
    if task == "ifeval":
        return Suite("ifeval", "generate", ifeval_rows())
    if task.startswith("when2call:"):
        path = task.split(":", 1)[1]
        return Suite("when2call", "mcq", load_when2call(path, on_error))
    path = Path(task)
    if not path.exists():
        raise ValueError(f"task '{task}': not a built-in suite (math, code, ifeval, when2call:PATH) "
                         f"and no such file")
    report = load_rows(path, on_error)
    return Suite(path.stem, "generate", report.rows, len(report.skipped), respect_row_reasoning)


def jobs(suites: list[Suite], modes: list[str]) -> list[Job]:
    """Every (prompt, mode) pair in a fixed order: by mode, then suite, then row."""
    out = []
    for mode in modes:
        for suite in suites:
            for item in suite.items:
                if suite.respect_row_reasoning and item.reasoning != mode:
                    continue
                out.append(Job(f"{suite.name}/{item.id}/{mode}", suite.name, suite.kind, mode, item))
    dups = [k for k, c in Counter(j.key for j in out).items() if c > 1]
    if dups:
        raise ValueError(f"duplicate prompt id '{dups[0]}': ids must be unique within a suite")
    return out
