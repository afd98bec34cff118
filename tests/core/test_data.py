import json

import pytest
from math_verify import parse, verify

from core.data import code_tasks, math_tasks
from core.data.loading import DataError, load_rows, write_jsonl
from core.data.synth import code_rows, math_rows


def test_every_math_answer_verifies():
    problems = math_tasks.generate(400, seed=3)
    assert {p.difficulty for p in problems} == {1, 2, 3, 4}
    for p in problems:
        math_tasks.verify(p)  # sympy evaluation of the whole expression
        gold = parse(f"${math_tasks.format_number(p.answer)}$")
        assert verify(gold, parse(math_tasks.final_answer(p))), p


def test_worked_solution_ends_at_the_answer():
    for p in math_tasks.generate(50, seed=4):
        assert p.steps[-1].endswith(f"= {math_tasks.format_number(p.answer)}")
        assert len(p.steps) == min(p.difficulty, 3) + (1 if p.difficulty >= 4 else 0)


def test_every_code_reference_passes_and_a_wrong_one_fails():
    problems = code_tasks.generate(40, seed=5)
    for p in problems:
        assert code_tasks.run_tests(p.solution, p.tests)
    wrong = problems[0].solution.replace("return", "return 1 +")
    assert not code_tasks.run_tests(wrong, problems[0].tests)


def test_rows_follow_schema_and_pair_modes(tmp_path):
    rows = math_rows(5, 0) + code_rows(4, 0)
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    report = load_rows(path)
    assert len(report.rows) == 18 and not report.skipped
    on = [r for r in report.rows if r.reasoning == "on"]
    assert all(r.reference_response.startswith("<think>") for r in on)
    assert all("<think>" not in r.reference_response for r in report.rows if r.reasoning == "off")


def _bad_file(tmp_path):
    good = math_rows(1, 0, modes=("on",))[0]
    lines = [json.dumps(good), "{not json", json.dumps({**good, "reasoning": "maybe"}),
             json.dumps({**good, "reward": {"type": "code", "tests": []}}), json.dumps(good)]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_rows_are_skipped_and_counted_with_file_and_line(tmp_path, capsys):
    path = _bad_file(tmp_path)
    report = load_rows(path, on_error="skip")
    assert len(report.rows) == 2
    assert [s.split(": ")[0] for s in report.skipped] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "key 'reasoning'" in report.skipped[1]
    assert "key 'reward.tests'" in report.skipped[2]
    assert "3 malformed rows skipped" in capsys.readouterr().err


def test_malformed_row_stops_the_run_when_configured(tmp_path):
    path = _bad_file(tmp_path)
    with pytest.raises(DataError, match=rf"{path}:2: invalid JSON"):
        load_rows(path, on_error="raise")
