"""Task suites and jobs: built-ins, user rows, the per-row reasoning option, bad input."""
from __future__ import annotations

import json

import pytest

from core.data.synth import math_rows
from evaluation.suites import jobs, load_suite


def test_synthetic_suites_share_ids_across_modes():
    math = load_suite("math", 4, 2, 1)
    code = load_suite("code", 4, 2, 1)
    assert [r.id for r in math.items] == [f"math-test-1-{i}" for i in range(4)]
    assert len(code.items) == 2 and code.items[0].reward["type"] == "code"
    keys = [j.key for j in jobs([math, code], ["on", "off"])]
    assert keys[:2] == ["math/math-test-1-0/on", "math/math-test-1-1/on"]
    assert len(keys) == 12 and "math/math-test-1-0/off" in keys


def test_user_rows_and_respect_row_reasoning(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in math_rows(2, 0, modes=("on", "off"), with_response=False)))
    everywhere = load_suite(str(path), 0, 0, 0)
    assert everywhere.name == "mine" and len(jobs([everywhere], ["on", "off"])) == 8
    own = load_suite(str(path), 0, 0, 0, respect_row_reasoning=True)
    got = jobs([own], ["on", "off"])
    assert len(got) == 4 and all(j.item.reasoning == j.mode for j in got)


def test_bad_tasks_and_duplicate_ids(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_suite("nope.jsonl", 0, 0, 0)
    path = tmp_path / "dup.jsonl"
    row = math_rows(1, 0, modes=("off",), with_response=False)[0]
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="duplicate prompt id"):
        jobs([load_suite(str(path), 0, 0, 0)], ["off"])
