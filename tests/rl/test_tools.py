"""Tool calls, the calculator, the tool registry and runner (timeouts, errors), the
sandboxed Python tool, and the template rendering of tool turns for several formats."""
from __future__ import annotations

import time

import pytest

from rl.tools import Tool, ToolCall, ToolRunner, get_tool, parse_turn, render_calls, tool
from rl.tools.builtin import evaluate


def test_parse_turn():
    calls = [ToolCall("calculator", {"expression": "1 + 1"}), ToolCall("python", {"code": "print(1)"})]
    assert parse_turn("sure " + render_calls(calls)).calls == calls
    assert parse_turn("the answer is 2") .attempted is False
    assert parse_turn('<TOOLCALL>{"name": "f", "arguments": "{\\"x\\": 1}"}</TOOLCALL>').calls == [ToolCall("f", {"x": 1})]
    for bad, why in [("<TOOLCALL>[oops", "must enclose"), ("<TOOLCALL>[oops]</TOOLCALL>", "not valid JSON"),
                     ('<TOOLCALL>[{"arguments": {}}]</TOOLCALL>', "'name'"), ("<TOOLCALL>[]</TOOLCALL>", "empty"),
                     ('<TOOLCALL>[{"name": "f", "arguments": [1]}]</TOOLCALL>', "'arguments' must be an object"),
                     ("<TOOLCALL>[1]</TOOLCALL>", "expected an object")]:
        parsed = parse_turn(bad)
        assert parsed.attempted and not parsed.calls and why in parsed.error, bad


def test_calculator_is_exact_and_safe():
    assert evaluate("5 + 7") == "12" and evaluate("2 ** 10 - 1") == "1023" and evaluate("7 / 2") == "3.5"
    assert evaluate("(1 + 2) * -3 // 2") == "-5" and evaluate("1/3 + 2/3") == "1"
    for bad in ["__import__('os').system('true')", "x + 1", "9 ** 9 ** 9", "1 / 0", "[1, 2]", "2 ** 0.5", "1 +"]:
        with pytest.raises(ValueError):
            evaluate(bad)


@tool("shout_test", runs_in="caller")
def shout(text: str, times: int = 1) -> str:
    """Upper-case a text."""
    return text.upper() * times


def slow_caller(seconds: float) -> str:
    time.sleep(seconds)
    return "late"


def hang_forever() -> str:
    """Never returns."""
    while True:
        time.sleep(1)


def boom(x: int) -> int:
    raise RuntimeError(f"bad {x}")


def test_registry_forms():
    t = get_tool("shout_test")
    assert t.runs_in == "caller" and t.description == "Upper-case a text."
    assert t.parameters == {"type": "object", "properties": {"text": {"type": "string"}, "times": {"type": "integer"}},
                            "required": ["text"]}
    assert t.openai_spec()["function"]["name"] == "shout_test"
    ref = get_tool("test_tools:hang_forever")
    assert ref.name == "hang_forever" and ref.runs_in == "process" and ref.description == "Never returns."
    with pytest.raises(LookupError, match="unknown tool 'nope'"):
        get_tool("nope")
    with pytest.raises(LookupError, match="has no attribute"):
        get_tool("test_tools:missing")
    with pytest.raises(ValueError, match="already registered"):
        tool("shout_test")(lambda text: text)


def test_runner_errors_never_raise():
    runner = ToolRunner([get_tool("shout_test"), get_tool("test_tools:hang_forever"), get_tool("test_tools:boom"),
                         Tool("slow_caller", slow_caller, runs_in="caller", timeout_s=0.5)], timeout_s=3.0)
    try:
        t0 = time.monotonic()
        out = runner.run([ToolCall("shout_test", {"text": "hi", "times": 2}), ToolCall("hang_forever"),
                          ToolCall("boom", {"x": 3}), ToolCall("nope"), ToolCall("shout_test", {"txt": "x"}),
                          ToolCall("slow_caller", {"seconds": 5})])
        assert time.monotonic() - t0 < 20
    finally:
        runner.close()
    assert out[0].content == "HIHI" and not out[0].error
    assert out[1].error == "timeout" and "timed out" in out[1].content and "killed" in out[1].content
    assert out[2].error == "raised" and "RuntimeError: bad 3" in out[2].content
    assert out[3].error == "unknown_tool" and "available" in out[3].content
    assert out[4].error == "bad_arguments" and "'text'" in out[4].content
    assert out[5].error == "timeout" and "0.5s" in out[5].content


def test_python_tool_runs_in_the_sandbox():
    runner = ToolRunner([get_tool("python")], max_chars=200)
    try:
        ok, err, loop, big = runner.run([
            ToolCall("python", {"code": "import os\nprint(6 * 7, os.getcwd())"}),
            ToolCall("python", {"code": "print('partial')\n1 / 0"}),
            ToolCall("python", {"code": "while True: pass"}),
            ToolCall("python", {"code": "print('x' * 1000)"})])
    finally:
        runner.close()
    assert ok.content.startswith("42 ") and not ok.error
    assert err.content.startswith("partial\n[error: exit code 1: ZeroDivisionError")
    assert "[error:" in loop.content and not loop.error  # the sandbox's own deadline / CPU limit stopped it
    assert big.content.endswith("...[truncated]") and len(big.content) == 200 + len(" ...[truncated]")


@pytest.mark.parametrize("fmt", ["llama3", "chatml", "mistral"])
def test_answer_ids_join_turns_as_the_template_does(fmt):
    """prompt + policy turn + answer ids == the template's rendering of the conversation,
    for templates with and without a tool role (ChatML drops it, Mistral raises on it)."""
    from chat_formats import FORMATS, build_tokenizer
    from core.tokenization import encode_conversation, encode_completion
    from rl.turns import RESPONSE_OPEN, TurnRenderer

    tok = build_tokenizer(FORMATS[fmt], corpus_rows=500)
    r = TurnRenderer(tok)
    tools = [get_tool("calculator").spec()]
    msgs = r.conversation([{"role": "system", "content": "detailed thinking off"},
                           {"role": "user", "content": "What is 5 + 7?"}], tools)
    assert msgs[[m["role"] for m in msgs].index("user")]["content"].startswith("<AVAILABLE_TOOLS>[{")
    ids = r.prompt_ids(msgs, tools)
    call = render_calls([ToolCall("calculator", {"expression": "5 + 7"})])
    turn = encode_completion(tok, [r.as_template_message(m) for m in msgs], call)  # content + end of turn
    ids += turn
    msgs.append({"role": "assistant", "content": call})
    answer = [{"role": "tool", "name": "calculator", "content": "12"}]
    ids += r.answer_ids(msgs, answer, tools, turn[-1])
    msgs += answer
    final = encode_completion(tok, [r.as_template_message(m) for m in msgs], "12")
    whole = encode_conversation(tok, [r.as_template_message(m) for m in msgs + [{"role": "assistant", "content": "12"}]])
    # The whole rendering goes on only with what the template writes after the last turn's
    # end (ChatML's newline): never generated, never trained.
    assert whole.input_ids[:len(ids + final)] == ids + final
    assert not any(whole.loss_mask[len(ids + final):])
    assert r.tool_role == (fmt == "llama3")
    if not r.tool_role:
        assert RESPONSE_OPEN + "12" in tok.decode(whole.input_ids)
