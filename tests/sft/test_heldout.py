import pytest

from sft.heldout import last_boxed, run_code, score_completion, summarize

MATH = {"reasoning": "on", "reward": {"type": "math", "answer": "3/2"}}
CODE = {"reasoning": "off", "reward": {"type": "code", "tests": ["assert f(2) == 4"]}}


@pytest.mark.parametrize("row_mode,text,score", [
    ("on", "<think>6 / 4 = 3/2.</think>The answer is \\boxed{3/2}.", 1.0),
    ("on", "<think>x</think>The answer is \\boxed{6/4}.", 1.0),  # equal as a fraction
    ("on", "<think>x</think>The answer is \\boxed{1.5}.", 1.0),
    ("on", "The answer is \\boxed{3/2}.", 0.0),  # on mode without a think block
    ("on", "<think>\\boxed{3/2} never closed", 0.0),
    ("on", "<think>\\boxed{3/2}</think>The answer is \\boxed{2}.", 0.0),  # only the answer counts
    ("off", "The answer is \\boxed{3/2}.", 1.0),
    ("off", "The answer is 3/2.", 0.0),
])
def test_math_scoring(row_mode, text, score):
    assert score_completion({**MATH, "reasoning": row_mode}, text) == score


def test_code_scoring():
    good = "```python\ndef f(x):\n    return x * 2\n```"
    assert score_completion(CODE, good) == 1.0
    assert score_completion(CODE, good.replace("* 2", "+ 1")) == 0.0
    assert score_completion(CODE, "def f(x): return 4") == 0.0  # no code block
    assert run_code("while True: pass", timeout=0.5) is False


def test_last_boxed_balances_braces_and_summary_groups():
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    samples = [{"mode": "on", "domain": "math", "level": 3, "score": 1.0},
               {"mode": "on", "domain": "math", "level": 1, "score": 0.0},
               {"mode": "off", "domain": "code", "level": 1, "score": 1.0}]
    acc = summarize(samples)
    assert acc["accuracy_on"] == 0.5 and acc["accuracy_on_math_l3"] == 1.0 and acc["accuracy_off_code"] == 1.0
