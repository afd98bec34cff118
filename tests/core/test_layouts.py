"""Each data layout users bring, read into task rows; a malformed row is named by file:line."""
from __future__ import annotations

import json

import pytest

from core.data.layouts import Layout
from core.data.loading import DataError, load_rows
from rl.preference.data import load_pairs

GSM = [{"question": "Natalia sold 48 clips in April and half as many in May. How many in total?",
        "answer": "In May she sold 48/2 = 24 clips.\nIn total 48+24 = 72 clips.\n#### 72"},
       {"question": "A shirt costs 1,200 cents. How many dollars?", "answer": "1,200/100 = 12\n#### 12"}]
GSM_LAYOUT = Layout(kind="columns", prompt="question", response="answer", answer="answer", answer_after="#### ",
                    response_format="think_answer")


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_openai_messages_jsonl_and_a_malformed_row(tmp_path):
    good = {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
            "reasoning": "off", "reward": {"type": "math", "answer": "4"}}
    path = _jsonl(tmp_path / "chat.jsonl", [good, {**good, "messages": [{"role": "robot", "content": "x"}]}])
    with pytest.raises(DataError, match=rf"{path}:2: key 'messages\[0\].role'"):
        load_rows(path)
    report = load_rows(path, on_error="skip")
    assert len(report.rows) == 1 and report.rows[0].reference_response == "4"


def test_llama_nemotron_post_training_layout(tmp_path):
    row = {"input": [{"role": "user", "content": "What is 7 * 6?"}], "output": "<think>7*6=42</think>42",
           "reasoning": "on", "system_prompt": "detailed thinking on", "category": "math",
           "license": "cc-by-4.0", "generator": "DeepSeek-R1", "used_in_training": "Ultra, Super, Nano", "version": "v1.1"}
    bad = {**row, "reasoning": "off"}  # contradicts its system prompt
    path = _jsonl(tmp_path / "nemotron.jsonl", [row, {**row, "input": "Say hi.", "output": "Hi!", "reasoning": "off",
                                                      "system_prompt": "detailed thinking off", "category": "chat"}, bad])
    with pytest.raises(DataError, match=rf"{path}:3: key 'system_prompt'.*contradicts reasoning 'off'"):
        load_rows(path)
    rows = load_rows(path, on_error="skip").rows
    assert [r.messages[-1] for r in rows] == [{"role": "assistant", "content": "<think>7*6=42</think>42"},
                                              {"role": "assistant", "content": "Hi!"}]
    assert rows[1].messages[0] == {"role": "user", "content": "Say hi."}
    assert [r.reasoning for r in rows] == ["on", "off"] and rows[0].meta["domain"] == "math"
    assert rows[0].meta["generator"] == "DeepSeek-R1"


@pytest.mark.parametrize("fmt", ["save_to_disk", "parquet", "jsonl"])
def test_question_answer_tables_through_a_column_mapping(tmp_path, fmt):
    import datasets

    ds = datasets.Dataset.from_list(GSM + [{"question": "Broken row", "answer": "no final answer"}])
    if fmt == "save_to_disk":
        datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "gsm"))
        path = f"{tmp_path / 'gsm'}::train"
    elif fmt == "parquet":
        path = str(tmp_path / "gsm.parquet")
        ds.to_parquet(path)
    else:
        path = str(_jsonl(tmp_path / "gsm.jsonl", ds.to_list()))
    with pytest.raises(DataError, match=r"gsm[^:]*:3: key 'answer': no '#### ' marker"):
        load_rows(path, layout=GSM_LAYOUT)
    rows = load_rows(path, on_error="skip", layout=GSM_LAYOUT).rows
    assert [r.reward for r in rows] == [{"type": "math", "answer": "72"}, {"type": "math", "answer": "12"}]
    assert rows[0].messages[0]["content"].startswith("Natalia sold 48 clips")
    assert rows[0].reference_response == ("<think>In May she sold 48/2 = 24 clips.\nIn total 48+24 = 72 clips.</think>"
                                          "The answer is \\boxed{72}.")
    prompts = load_rows(path, on_error="skip", layout=Layout(kind="columns", answer="answer", answer_after="#### ",
                                                             reasoning="off")).rows
    assert all(r.reference_response is None and r.reasoning == "off" for r in prompts)  # RL / evaluation prompts


def test_dataset_dict_folder_split_defaults_to_train_else_must_be_named(tmp_path):
    import datasets

    datasets.DatasetDict({"test": datasets.Dataset.from_list(GSM)}).save_to_disk(str(tmp_path / "gsm"))
    with pytest.raises(DataError, match=r"splits \['test'\]; name one as .*::<split>"):
        load_rows(tmp_path / "gsm", layout=GSM_LAYOUT)
    assert len(load_rows(f"{tmp_path / 'gsm'}::test", layout=GSM_LAYOUT).rows) == 2


def test_unknown_layout_is_named(tmp_path):
    path = _jsonl(tmp_path / "odd.jsonl", [{"prompt_text": "hi"}])
    with pytest.raises(DataError, match=rf"{path}:1: cannot tell the layout.*data.layout.kind=columns"):
        load_rows(path)


def test_trl_preference_pairs_and_a_malformed_row(tmp_path):
    prompt = [{"role": "user", "content": "2+2?"}]
    implicit = {"chosen": [*prompt, {"role": "assistant", "content": "4"}],
                "rejected": [*prompt, {"role": "assistant", "content": "5"}]}
    explicit = {"prompt": prompt, "chosen": [{"role": "assistant", "content": "4"}],
                "rejected": [{"role": "assistant", "content": "5"}]}
    bad = {"chosen": [*prompt, {"role": "assistant", "content": "4"}],
           "rejected": [{"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "5"}]}
    path = _jsonl(tmp_path / "trl.jsonl", [implicit, explicit, bad])
    with pytest.raises(DataError, match=rf"{path}:3: keys 'chosen'/'rejected': the two conversations must share"):
        load_pairs(path)
    pairs = load_pairs(path, on_error="skip").rows
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [(prompt, "4", "5")] * 2


def test_convert_a_table_to_task_rows_for_rl_and_evaluation(tmp_path):
    import subprocess
    import sys

    src = _jsonl(tmp_path / "gsm.jsonl", GSM + [{"question": "Broken", "answer": "no marker"}])
    out = tmp_path / "rows.jsonl"
    proc = subprocess.run([sys.executable, "-m", "core.data.layouts", str(src), str(out), "kind=columns",
                           "answer=answer", 'answer_after="#### "', "reasoning=off"], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr  # one malformed row skipped, and named
    assert f"{src}:3: key 'answer'" in proc.stderr and "2 rows, 1 malformed rows skipped" in proc.stdout
    rows = load_rows(out).rows  # plain task rows now
    assert [(r.prompt_messages[0]["content"][:7], r.reward["answer"], r.reasoning) for r in rows] == [
        ("Natalia", "72", "off"), ("A shirt", "12", "off")]
