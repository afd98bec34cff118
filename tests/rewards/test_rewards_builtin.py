"""Built-in rewards on real completions: math-verify in worker processes, code in the
sandbox, instruction-following constraints, When2Call decisions, the format toggle."""
from __future__ import annotations

import threading

import pytest

from rewards import RewardSample, get_reward
from rewards.builtin.extract import answer_region, code_block, final_answer
from rewards.builtin.ifeval import CHECKS, check
from rewards.builtin.tool import classify


def S(completion: str, spec: dict, mode: str = "off", sid: str = "t") -> RewardSample:
    return RewardSample(sid, [{"role": "user", "content": "q"}], completion, spec, mode)


def math(completion: str, answer: str, mode: str = "off", **options) -> tuple[float, dict]:
    r = get_reward("math").fn(S(completion, {"type": "math", "answer": answer}, mode), **options)
    return r.score, r.info


@pytest.mark.parametrize("completion,answer,mode,score", [
    ("<think>3 of 4 parts</think>The answer is \\boxed{\\frac{3}{4}}.", "3/4", "on", 1.0),
    ("<think>3 of 4 parts</think>The answer is \\boxed{0.75}.", "\\frac{3}{4}", "on", 1.0),
    ("The answer is \\boxed{7}.", "7", "off", 1.0),
    ("The answer is \\boxed{8}.", "7", "off", 0.0),
    ("so 5 + 7 gives 12", "12", "off", 1.0),                       # falls back to the last number
    ("<think>it is \\boxed{7}</think>I am not sure.", "7", "on", 0.0),  # boxed in reasoning only
    ("<think>it is \\boxed{7} and I keep thinking", "7", "on", 0.0),    # reasoning never closes
    ("<think>x</think>\\boxed{\\{1,2\\}}", "\\{2, 1\\}", "on", 1.0),
    ("no answer at all", "7", "off", 0.0),
])
def test_math_reward(completion, answer, mode, score):
    assert math(completion, answer, mode)[0] == score


def test_math_reward_explains_itself():
    _, info = math("<think>never closed \\boxed{7}", "7", "on")
    assert info["reason"] == "reasoning never closed (no </think>)"
    _, info = math("The answer is \\boxed{\\frac{3}{4}}.", "0.75")
    assert info["extracted"] == "\\frac{3}{4}" and info["correct"] is True


def test_math_worker_is_killed_on_a_pathological_input_and_replaced():
    score, info = math("\\boxed{9^{9^{9^{9}}}}", "1", timeout_s=1.0)
    assert score == 0.0 and info["timed_out"] is True
    assert math("\\boxed{2}", "2")[0] == 1.0  # the replacement worker answers


def test_math_verifier_survives_a_worker_that_does_not_start():
    """A start that fails (here: a start timeout no process meets) is an error for that call,
    leaves no zombie process, and does not shrink the pool: the next call gets a worker
    instead of waiting forever for one that was never put back."""
    import multiprocessing as mp

    from rewards.builtin.math import MathVerifier

    before = set(mp.active_children())  # other tests' verifiers (the shared default one)
    verifier = MathVerifier(workers=1, start_timeout_s=1e-6)
    try:
        with pytest.raises(RuntimeError, match="did not start"):
            verifier.verify("2", "2", timeout_s=5.0)
        assert set(mp.active_children()) <= before  # killed and reaped
        verifier._start_timeout_s = 120.0
        done = threading.Event()
        result: dict = {}
        threading.Thread(target=lambda: (result.update(verifier.verify("2", "2", 5.0)), done.set()),
                         daemon=True).start()
        assert done.wait(150), "the pool lost its only worker slot"
        assert result["correct"] is True
    finally:
        verifier.close()


def test_math_reward_works_from_many_threads():
    results: list[float] = []

    def one(i: int) -> None:
        results.append(math(f"\\boxed{{{i * 2}}}", str(i * 2))[0])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1.0] * 8


def test_extraction_helpers():
    assert answer_region("<think>a</think>b</think>c", "on") == "c"
    assert answer_region("<think>a", "on") is None
    assert final_answer("x \\boxed{\\frac{1}{\\sqrt{2}}} y") == "\\frac{1}{\\sqrt{2}}"
    assert final_answer("first 3 then -4.5") == "-4.5"
    assert code_block("```\nA\n```\n```python\nB\n```\n```\nC\n```") == "B\n"


@pytest.mark.parametrize("completion,mode,score", [
    ("<think>reasoning</think>answer", "on", 1.0),
    ("<think></think>answer", "on", 1.0),               # Ultra may think emptily
    ("answer", "on", 0.0),
    ("<think>a</think><think>b</think>answer", "on", 0.0),
    ("<think>reasoning</think>   ", "on", 0.0),
    ("preamble <think>r</think>answer", "on", 0.0),
    ("plain answer", "off", 1.0),
    ("<think>r</think>answer", "off", 0.0),
])
def test_format_reward(completion, mode, score):
    assert get_reward("format").fn(S(completion, {"type": "math", "answer": "1"}, mode)).score == score


CODE_SPEC = {"type": "code", "entry_point": "add",
             "tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 5"]}


def code(body: str, mode: str = "all", reasoning: str = "off", **opt) -> tuple[float, dict]:
    r = get_reward("code").fn(S(body, CODE_SPEC, reasoning), mode=mode, **opt)
    return r.score, r.info


def test_code_reward_all_pass_and_fraction():
    solution = "<think>add them</think>```python\ndef add(a, b):\n    return a + b\n```"
    assert code(solution, reasoning="on")[0] == 0.0  # the third test fails
    score, info = code(solution, mode="fraction", reasoning="on")
    assert score == pytest.approx(2 / 3) and info["passed"] == 2 and "AssertionError" in info["error"]
    spec = {**CODE_SPEC, "tests": CODE_SPEC["tests"][:2]}
    assert get_reward("code").fn(S(solution, spec, "on")).score == 1.0


def test_code_reward_survives_hostile_and_broken_solutions():
    score, info = code("```python\ndef add(a, b):\n    while True:\n        pass\n```",
                       mode="fraction", timeout_s=1.0)
    assert score == 0.0 and info["verdict"]["resource"] in ("cpu_time", "wall_time")
    assert code("```python\ndef add(a, b) return\n```", mode="fraction")[1]["error"].startswith("SyntaxError")
    fake = "```python\nprint('[true, true, true]')\ndef add(a, b):\n    return -100\n```"
    assert code(fake, mode="fraction")[0] == 0.0
    assert code("no code here")[1]["reason"] == "no code block"
    assert code("<think>```python\ndef add(a,b): return a+b\n```", reasoning="on")[1]["reason"].startswith("reasoning never closed")


def test_instruction_following_has_many_kinds_with_real_checks():
    assert len(CHECKS) >= 8
    cases = [
        ({"kind": "max_words", "n": 3}, "one two three", "one two three four"),
        ({"kind": "min_words", "n": 3}, "one two three", "one two"),
        ({"kind": "include_keywords", "keywords": ["Ray", "GRPO"]}, "ray runs grpo", "ray only"),
        ({"kind": "exclude_keywords", "keywords": ["sorry"]}, "sure", "Sorry, no"),
        ({"kind": "json_format"}, '```json\n{"a": 1}\n```', "{a: 1}"),
        ({"kind": "bullet_count", "n": 2}, "* a\n* b", "* a\n* b\n- c"),
        ({"kind": "lowercase"}, "all lower", "Not lower"),
        ({"kind": "uppercase"}, "ALL UPPER", "Not upper"),
        ({"kind": "no_commas"}, "a b c", "a, b"),
        ({"kind": "paragraph_count", "n": 2}, "p1\n\np2", "p1"),
        ({"kind": "ends_with", "phrase": "Done."}, "work. Done.", "Done. work"),
        ({"kind": "keyword_frequency", "keyword": "go", "n": 2}, "go go", "go"),
        ({"kind": "title"}, "<<A Title>> text", "no title"),
    ]
    for constraint, good, bad in cases:
        assert check(good, constraint) and not check(bad, constraint), constraint
    with pytest.raises(ValueError, match="unknown instruction constraint kind 'rhyme'"):
        check("x", {"kind": "rhyme"})
    spec = {"type": "if", "constraints": [c for c, _, _ in cases[:4]]}
    r = get_reward("if").fn(S("<think>plan</think>ray grpo now", spec, "on"))
    assert r.score == 1.0 and r.info["failed"] == []
    r = get_reward("if").fn(S("<think>plan</think>ray grpo sorry now", spec, "on"))
    assert r.score == 0.5 and r.info["failed"] == ["max_words", "exclude_keywords"]
    assert get_reward("if").fn(S("ray grpo sorry now", spec), strict=True).score == 0.0


TOOLS = [{"name": "get_weather", "parameters": {"city": {"type": "string"}}}]


@pytest.mark.parametrize("text,category", [
    ('<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</TOOLCALL>', "tool_call"),
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}', "tool_call"),
    ("Which city would you like the weather for?", "request_for_info"),
    ("I'm sorry, I cannot book flights with the tools I have.", "cannot_answer"),
    ("It is sunny in Paris today.", "direct"),
])
def test_tool_call_classification(text, category):
    assert classify(text)[0] == category


def test_tool_decision_reward_and_hallucination_penalty():
    call = '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</TOOLCALL>'
    spec = {"type": "tool", "correct": "tool_call", "tools": TOOLS,
            "call": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    tool = get_reward("tool").fn
    assert tool(S(call, spec)).score == 1.0
    assert tool(S(call.replace("Paris", "Rome"), spec)).score == 0.0
    assert tool(S("Which city?", spec)).score == 0.0
    no_fit = {"type": "tool", "correct": "cannot_answer", "tools": []}
    assert tool(S(call, no_fit)).score == -1.0
    assert tool(S("I cannot do that with the available tools.", no_fit)).score == 1.0
    ask = {"type": "tool", "correct": "request_for_info", "tools": TOOLS}
    assert tool(S("<think>no city given</think>Which city do you mean?", ask, "on")).score == 1.0


def test_by_type_dispatches_on_the_row_type():
    by_type = get_reward("by_type").fn
    assert by_type(S("\\boxed{4}", {"type": "math", "answer": "4"})).score == 1.0
    assert by_type(S("a b", {"type": "if", "constraints": [{"kind": "no_commas"}]})).score == 1.0
    with pytest.raises(ValueError, match="no built-in reward for reward.type 'poem'"):
        by_type(S("x", {"type": "poem"}))


@pytest.mark.parametrize("completion,mode,score,reason", [
    ("<think>5 + 3 = 8. 8 * 2 = 16.</think>The answer is \\boxed{16}.", "on", 1.0, None),
    # Right answer through a false step: the answer alone would score 1.
    ("<think>5 + 3 = 9. 9 * 2 = 16.</think>The answer is \\boxed{16}.", "on", 0.0, "false equation in the working"),
    ("<think>5 + 3 = 8. 8 * 2 = 16.</think>The answer is \\boxed{15}.", "on", 0.0, None),
    ("<think>48 / 3 = 16. 16 / 3 = 16/3.</think>The answer is \\boxed{16}.", "on", 1.0, None),  # exact fractions
    ("<think>(5 + 3) * 2 = 16. 16 / 0 = 16.</think>\\boxed{16}", "on", 0.0, "false equation in the working"),
    ("8 * 2 = 16, so \\boxed{16}", "off", 1.0, None),                            # off: the whole text is checked
    ("5 + 3 = 9, then 9 + 7 = 16 so \\boxed{16}", "off", 0.0, "false equation in the working"),
])
def test_math_steps_reward(completion, mode, score, reason):
    r = get_reward("math_steps").fn(S(completion, {"type": "math", "answer": "16"}, mode))
    assert r.score == score
    if reason:
        assert r.info["reason"] == reason


def test_false_equations_lists_each_false_step():
    from rewards.builtin.math_steps import evaluate, false_equations

    assert evaluate("7 / 2 * 4") == 14 and evaluate("2 × 3 + 1") == 7
    assert false_equations("2 * 3 = 4. 4 + 2 = 6. 1.5 * 2 = 3. 9 - 3 = 5") == ["2 * 3 = 4", "9 - 3 = 5"]


@pytest.mark.parametrize("completion,mode,score", [
    ("<think>5 + 3 = 8. 8 * 2 = 16.</think>The answer is \\boxed{16}.", "on", 1.0),
    ("<think>5 + 3 = 9. 9 * 2 = 18. 18 - 2 = 15.</think>\\boxed{15}", "on", 1 / 3),  # 2 of 3 false
    ("<think>5 + 3 = 9. 9 * 2 = 17.</think>\\boxed{16}", "on", 0.0),                 # right answer, no true step
    ("<think>I just know it.</think>\\boxed{16}", "on", 0.0),                         # nothing to check
    ("<think>8 * 2 = 16.</think>Also 1 + 1 = 3.", "on", 1.0),                         # only the reasoning counts in `on`
    ("8 * 2 = 16 and 1 + 1 = 3", "off", 0.5),
])
def test_arithmetic_reward_is_the_fraction_of_true_equations(completion, mode, score):
    r = get_reward("arithmetic").fn(S(completion, {"type": "math", "answer": "16"}, mode))
    assert r.score == pytest.approx(score)
