"""The reasoning toggle and its rendering through the tiny checkpoint's own template."""
import pytest

from core.chat import (THINK_CLOSE, THINK_OPEN, ChatSettings, chat_settings, format_response, set_chat_settings,
                       split_think, with_system_prompt)
from core.tokenization import encode_conversation, encode_prompt

CONV = [{"role": "user", "content": "What is 2 + 3?"}]


def test_toggle_is_the_system_prompt_exactly():
    on = with_system_prompt(CONV, "on")
    off = with_system_prompt([{"role": "system", "content": "be nice"}, *CONV], "off")
    assert on[0] == {"role": "system", "content": "detailed thinking on"}
    assert off[0] == {"role": "system", "content": "detailed thinking off"} and len(off) == 2


def test_on_and_off_rendering(hf_engine):
    tok = hf_engine.tokenizer
    on = format_response("The answer is 5.", "on", "2 + 3 = 5.")
    off = format_response("The answer is 5.", "off", "2 + 3 = 5.")
    assert on == "<think>2 + 3 = 5.</think>The answer is 5."
    assert off == "The answer is 5."
    ids = encode_conversation(tok, with_system_prompt([*CONV, {"role": "assistant", "content": on}], "on")).input_ids
    assert tok.decode(ids) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\ndetailed thinking on<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 3?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n<think>2 + 3 = 5.</think>The answer is 5.<|eot_id|>")


def test_split_think():
    assert split_think("<think>a</think>b") == ("a", "b")
    assert split_think("plain") == (None, "plain")
    assert split_think("<think>never closed") == ("never closed", None)
    assert THINK_OPEN in format_response("x", "on") and THINK_CLOSE in format_response("x", "on")
    s = ChatSettings(think_open="<reason>", think_close="</reason>")
    assert split_think("<reason>a</reason>b", s) == ("a", "b")
    assert format_response("b", "on", "a", s) == "<reason>a</reason>b"


def test_settings_travel_with_the_tokenizer_and_bad_keys_are_named(hf_engine, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_engine.tokenizer.name_or_path)
    assert chat_settings(tok) == ChatSettings()
    custom = ChatSettings(system_prompts={"on": "think hard", "off": "answer directly"}, think_open="<r>",
                          think_close="</r>")
    set_chat_settings(tok, custom)
    tok.save_pretrained(str(tmp_path))
    again = AutoTokenizer.from_pretrained(str(tmp_path))
    assert chat_settings(again) == custom
    # the canonical toggle is written as the checkpoint's settings say
    assert "think hard" in again.decode(encode_prompt(again, with_system_prompt(CONV, "on")))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['think_tag'\]"):
        ChatSettings.from_dict({"think_tag": "<t>"})
    with pytest.raises(ValueError, match="toggle_placement"):
        ChatSettings(toggle_placement="assistant")


def test_token_spans_match_hf_template_and_mask_only_assistant(hf_engine):
    tok = hf_engine.tokenizer
    msgs = with_system_prompt([*CONV, {"role": "assistant", "content": "<think>2 + 3 = 5.</think>The answer is \\boxed{5}."}], "on")
    enc = encode_conversation(tok, msgs)
    ids = tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
    assert enc.input_ids == list(ids)
    masked = tok.decode([t for t, m in zip(enc.input_ids, enc.loss_mask) if m])
    assert masked == "<think>2 + 3 = 5.</think>The answer is \\boxed{5}.<|eot_id|>"
    prompt = encode_prompt(tok, msgs[:-1])
    assert enc.input_ids[:len(prompt)] == prompt and enc.prompt_len == len(prompt)


def test_hf_and_vllm_chat_render_identical_ids(hf_engine, vllm_engine):
    from vllm import SamplingParams

    for mode in ("on", "off"):
        msgs = with_system_prompt(CONV, mode)
        hf_ids = hf_engine.tokenizer.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True,
                                                         return_dict=True)["input_ids"]
        out = vllm_engine.llm.chat(msgs, SamplingParams(max_tokens=1), use_tqdm=False, add_generation_prompt=True)
        assert list(out[0].prompt_token_ids) == list(hf_ids) == encode_prompt(hf_engine.tokenizer, msgs)
