"""Loss masks, prompts and stop tokens from each checkpoint's own chat template.

Ground truth for a mask is independent of core.tokenization: the character spans of each
assistant turn (content + the format's end-of-turn marker) in the template's text
rendering, mapped to tokens through the tokenizer's offsets.
"""
from __future__ import annotations

import pytest
import torch
from chat_formats import FORMATS, LLAMA3_GENERATION_TEMPLATE, REWRITING_TEMPLATE, build_tokenizer

from core.chat import ChatSettings, set_chat_settings, with_system_prompt
from core.data.synth import code_rows, math_rows
from core.tokenization import (TemplateError, encode_completion, encode_conversation, encode_prompt,
                               end_of_turn_ids, place_toggle, stop_token_ids)

END_OF_TURN = {"llama3": "<|eot_id|>", "chatml": "<|im_end|>", "mistral": "</s>", "nemotron-nas": "<|eot_id|>",
               "llama3-generation": "<|eot_id|>"}


@pytest.fixture(scope="module")
def tokenizers():
    toks = {name: build_tokenizer(fmt) for name, fmt in FORMATS.items()}
    toks["llama3-generation"] = build_tokenizer(FORMATS["llama3"], LLAMA3_GENERATION_TEMPLATE)
    return toks


def _conversations():
    rows = math_rows(12, 5) + code_rows(4, 5)
    convs = [with_system_prompt(r["messages"], r["reasoning"]) for r in rows]
    multi = [{"role": "user", "content": "What is 2 + 3?"},
             {"role": "assistant", "content": "<think>2 + 3 = 5.</think>The answer is \\boxed{5}."},
             {"role": "user", "content": "And 7 * 6?"}, {"role": "assistant", "content": "42"}]
    return convs + [with_system_prompt(multi, "on"), with_system_prompt(multi, "off")]


def _expected_mask(tok, messages, eot: str) -> list[int]:
    messages = place_toggle(tok, messages)
    text = tok.apply_chat_template(messages, tokenize=False)
    spans, pos = [], 0
    for m in messages:
        if m["role"] == "assistant":
            start = text.index(m["content"] + eot, pos)
            pos = start + len(m["content"]) + len(eot)
            spans.append((start, pos))
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return [int(any(s <= a and b <= e for s, e in spans)) for a, b in enc["offset_mapping"]]


@pytest.mark.parametrize("name", list(END_OF_TURN))
def test_masks_equal_the_templates_assistant_spans(tokenizers, name):
    tok = tokenizers[name]
    for conv in _conversations():
        enc = encode_conversation(tok, conv)
        assert enc.input_ids == list(tok.apply_chat_template(place_toggle(tok, conv), tokenize=True,
                                                             return_dict=True)["input_ids"])
        assert enc.loss_mask == _expected_mask(tok, conv, END_OF_TURN[name]), name
        first_assistant = next(i for i, m in enumerate(conv) if m["role"] == "assistant")
        prompt = encode_prompt(tok, conv[:first_assistant])
        assert enc.input_ids[:len(prompt)] == prompt and enc.prompt_len == len(prompt)
        completion = encode_completion(tok, conv[:first_assistant], conv[first_assistant]["content"])
        assert completion == enc.input_ids[len(prompt):len(prompt) + len(completion)]
        assert completion[-1:] == [tok.convert_tokens_to_ids(END_OF_TURN[name])]


def test_toggle_goes_where_the_template_allows(tokenizers):
    conv = with_system_prompt([{"role": "user", "content": "What is 2 + 3?"}], "on")
    mistral = tokenizers["mistral"].decode(encode_prompt(tokenizers["mistral"], conv))
    assert mistral == "<s>[INST] detailed thinking on\n\nWhat is 2 + 3? [/INST]"  # no system role: first user turn
    chatml = tokenizers["chatml"].decode(encode_prompt(tokenizers["chatml"], conv))
    assert chatml.startswith("<|im_start|>system\ndetailed thinking on<|im_end|>")
    tok = build_tokenizer(FORMATS["chatml"])
    set_chat_settings(tok, ChatSettings(toggle_placement="user", toggle_separator=" "))
    assert "<|im_start|>user\ndetailed thinking on What is 2 + 3?<|im_end|>" in tok.decode(encode_prompt(tok, conv))


def test_a_template_that_rewrites_earlier_turns_is_a_clear_error():
    tok = build_tokenizer(FORMATS["chatml"], REWRITING_TEMPLATE)
    conv = _conversations()[-2]
    with pytest.raises(TemplateError, match="cannot segment assistant turn 2.*rewrites earlier turns"):
        encode_conversation(tok, conv)
    tok.chat_template = None
    with pytest.raises(TemplateError, match="no chat_template"):
        encode_prompt(tok, conv[:2])


def test_stop_tokens_come_from_the_template_and_generation_config(tokenizers, tmp_path):
    import json

    for name, eot in END_OF_TURN.items():
        assert end_of_turn_ids(tokenizers[name]) == [tokenizers[name].convert_tokens_to_ids(eot)]
    tok = tokenizers["llama3"]
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [
        tok.convert_tokens_to_ids("<|end_of_text|>"), tok.convert_tokens_to_ids("<|eot_id|>")]}))
    assert stop_token_ids(tok, tmp_path) == sorted(tok.convert_tokens_to_ids(["<|end_of_text|>", "<|eot_id|>"]))


def _per_piece(tok, messages):
    """The embedded tokenizer's encoding as the toolkit computed it before templates were
    applied generically: each header and body tokenized on its own and concatenated."""
    from core.tokenizer import BOS, END_HEADER, EOT, START_HEADER

    ids = tok(BOS, add_special_tokens=False)["input_ids"]
    mask = [0] * len(ids)
    for m in messages:
        head = tok(f"{START_HEADER}{m['role']}{END_HEADER}\n\n", add_special_tokens=False)["input_ids"]
        body = tok(m["content"] + EOT, add_special_tokens=False)["input_ids"]
        ids, mask = ids + head + body, mask + [0] * len(head) + [int(m["role"] == "assistant")] * len(body)
    return ids, mask


def test_the_embedded_models_token_ids_are_unchanged(hf_engine):
    """Its template is just its template: ids and masks equal the pre-template encoding, so
    the tiny default's figures cannot move."""
    tok = hf_engine.tokenizer
    rows = math_rows(200, 1) + code_rows(50, 1)
    for r in rows:
        conv = with_system_prompt(r["messages"], r["reasoning"])
        enc = encode_conversation(tok, conv)
        assert (enc.input_ids, enc.loss_mask) == _per_piece(tok, conv)
        assert encode_prompt(tok, conv[:-1]) == _per_piece(tok, conv[:-1])[0] + tok(
            "<|start_header_id|>assistant<|end_header_id|>\n\n", add_special_tokens=False)["input_ids"]
    # and a fixed prompt's ids, as recorded before the change
    prompt = encode_prompt(tok, with_system_prompt([{"role": "user", "content": "What is 2 + 3?"}], "on"))
    assert prompt == GOLDEN_TINY_PROMPT


# computed with the pre-change core/chat.py + core/tokenization.py (hand-written renderer)
GOLDEN_TINY_PROMPT = [0, 1, 542, 2, 203, 203, 521, 520, 430, 3, 1, 538, 2, 203, 203, 59, 76, 388, 302, 225, 22, 347, 225,
                      23, 35, 3, 1, 543, 2, 203, 203]


def test_hf_engine_stops_at_the_templates_end_of_turn(tmp_path):
    """A base generation config that names only <|endoftext|>: the HF engine still ends a
    completion at <|im_end|>, the template's end of turn."""
    import json

    from chat_formats import build_checkpoint

    from core.engines.base import SamplingSettings
    from core.engines.hf_engine import HFEngine

    model = build_checkpoint(FORMATS["chatml"], tmp_path / "m")
    gen = json.loads((model / "generation_config.json").read_text())
    engine = HFEngine(str(model))
    im_end, endoftext = engine.tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    gen["eos_token_id"] = endoftext
    (model / "generation_config.json").write_text(json.dumps(gen))
    engine = HFEngine(str(model))
    assert engine.stop_ids == sorted([im_end, endoftext])
    head = torch.nn.Linear(engine.model.config.hidden_size, engine.model.config.vocab_size)
    with torch.no_grad():  # logits = a one-hot bias: <|im_end|> is the most likely token everywhere
        head.weight.zero_()
        head.bias.zero_()
        head.bias[im_end] = 1.0
    engine.model.lm_head = head
    prompt = encode_prompt(engine.tokenizer, [{"role": "user", "content": "hi"}])
    (c,) = engine.generate([prompt], SamplingSettings(n=1, temperature=0.0, max_tokens=8))
    assert c.token_ids == [im_end] and c.finish_reason == "stop"
