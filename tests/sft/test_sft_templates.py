"""SFT of checkpoints users bring (Llama-3, ChatML on Qwen2, Mistral [INST], nemotron-nas):
the packed ids are the template's own rendering, training runs, and the held-out
evaluation prompts the engine with the template's generation prompt."""
from __future__ import annotations

import json

import pytest
from chat_formats import FORMATS, build_checkpoint

from core.chat import ChatSettings, chat_settings, with_system_prompt
from core.config import load_config
from core.data.synth import math_rows
from core.tokenization import end_of_turn_ids, place_toggle
from sft.config import SFTConfig
from sft.packing import encode_rows
from sft.pipeline import run_sft


@pytest.mark.parametrize("name", list(FORMATS))
def test_sft_renders_with_the_checkpoints_template_and_trains(name, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("REFORGE_HOME", str(tmp_path / "home"))
    base = build_checkpoint(FORMATS[name], tmp_path / "base")
    tok = AutoTokenizer.from_pretrained(str(base))
    rows = math_rows(6, 0)
    for row, enc in zip(rows, encode_rows(tok, rows)):
        conv = place_toggle(tok, with_system_prompt(row["messages"], row["reasoning"]))
        assert enc.input_ids == list(tok.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"])
        assert sum(enc.loss_mask) > 0 and enc.loss_mask[-1] in (0, 1)

    overrides = [f"model.base={base}", "data.synthetic_math=24", "data.synthetic_code=4", "epochs=0",
                 "train.total_steps=3", "packing.rows_per_micro=2", "eval.math_per_mode=3", "eval.code_per_mode=1",
                 "eval.engine=hf", "eval.max_tokens=8", f"run_dir={tmp_path / 'run'}", "publish_to=",
                 "logging.tensorboard=false"]
    if name == "chatml":  # settings chosen in the recipe travel with the trained checkpoint
        overrides += ["model.chat.think_open=<reason>", "model.chat.think_close=</reason>"]
        # a base model's generation config that stops only at <|endoftext|>, not at the turn's end
        gen = json.loads((base / "generation_config.json").read_text())
        gen["eos_token_id"] = tok.convert_tokens_to_ids("<|endoftext|>")
        (base / "generation_config.json").write_text(json.dumps(gen))
    summary = run_sft(load_config(SFTConfig, None, overrides))
    assert summary["steps"] == 3 and summary["final_loss"] == summary["final_loss"]  # finite
    assert 0.0 <= summary["accuracy_on"] <= 1.0
    out = AutoTokenizer.from_pretrained(summary["checkpoint"])
    assert out.chat_template == tok.chat_template
    expected = ChatSettings(think_open="<reason>", think_close="</reason>") if name == "chatml" else ChatSettings()
    assert chat_settings(out) == expected
    stops = json.loads((tmp_path / "run" / "checkpoint" / "generation_config.json").read_text())["eos_token_id"]
    assert set(end_of_turn_ids(tok)) <= set(stops if isinstance(stops, list) else [stops])
    cfg = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())
    assert cfg["model_type"] == {"llama3": "llama", "chatml": "qwen2", "mistral": "mistral",
                                 "nemotron-nas": "nemotron-nas"}[name]


@pytest.mark.parametrize("layout", ["nemotron", "columns"])
def test_sft_reads_the_layouts_users_have(layout, tmp_path, monkeypatch):
    """Llama-Nemotron post-training rows and a GSM8K-style parquet table train through the recipe."""
    import datasets

    monkeypatch.setenv("REFORGE_HOME", str(tmp_path / "home"))
    base = build_checkpoint(FORMATS["chatml"], tmp_path / "base")
    rows = math_rows(12, 3)
    if layout == "nemotron":
        path = tmp_path / "nemotron.jsonl"
        path.write_text("".join(json.dumps({
            "input": r["messages"][:1], "output": r["messages"][1]["content"], "reasoning": r["reasoning"],
            "system_prompt": f"detailed thinking {r['reasoning']}", "category": "math", "license": "cc-by-4.0"}) + "\n"
            for r in rows))
        extra = []
    else:
        path = tmp_path / "gsm.parquet"
        datasets.Dataset.from_list([{"question": r["messages"][0]["content"],
                                     "answer": f"worked steps\n#### {r['reward']['answer']}"}
                                    for r in rows if r["reasoning"] == "on"]).to_parquet(str(path))
        extra = ["data.layout.kind=columns", "data.layout.response=answer", "data.layout.answer=answer",
                 'data.layout.answer_after="#### "', "data.layout.response_format=think_answer"]
    summary = run_sft(load_config(SFTConfig, None, [
        f"model.base={base}", f"data.train_files=[{path}]", "epochs=0", "train.total_steps=2",
        "packing.rows_per_micro=1", "packing.pack_len=256", "eval.enabled=false", f"run_dir={tmp_path / 'run'}",
        "publish_to=", "logging.tensorboard=false", *extra]))
    assert summary["steps"] == 2 and summary["mix_counts"]["math"]["on"] > 0
