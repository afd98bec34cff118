"""Small random-weight stand-ins for the checkpoints users bring, built locally.

Each format is the architecture and the chat template text its family ships (the templates
below are those of Meta-Llama-3-8B-Instruct, Qwen2.5-Instruct without the tool branch,
and Mistral-7B-Instruct-v0.1), with special tokens of the same names, on a tokenizer
trained by core.tokenizer's builder on the project's synthetic corpus. `nemotron-nas` is
the Llama-Nemotron child format (nas/decilm) with the Llama-3 template. Nothing is
downloaded.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# The same format with HF's {% generation %} markers around assistant content + eot.
LLAMA3_GENERATION_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|eot_id|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|eot_id|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}"
    "{%- endif %}{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or (message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
# A template that drops the reasoning of earlier assistant turns (as Qwen3's does): its
# prefixes are not prefixes of the whole, so it cannot be segmented without markers.
REWRITING_TEMPLATE = (
    "{% for message in messages %}{% set content = message['content'] %}"
    "{% if message['role'] == 'assistant' and not loop.last %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + content + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                   "<|end_of_text|>", "<|finetune_right_pad_id|>"]


@dataclass(frozen=True)
class Format:
    name: str
    architecture: str  # llama | qwen2 | mistral | nemotron-nas
    template: str
    specials: tuple[str, ...]
    bos: str | None
    eos: str
    pad: str
    stop: tuple[str, ...]  # generation_config eos ids, as the family ships them
    has_system: bool


FORMATS = {
    "llama3": Format("llama3", "llama", LLAMA3_TEMPLATE, tuple(LLAMA3_SPECIALS), "<|begin_of_text|>", "<|eot_id|>",
                     "<|finetune_right_pad_id|>", ("<|end_of_text|>", "<|eot_id|>"), True),
    "chatml": Format("chatml", "qwen2", CHATML_TEMPLATE, ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), None,
                     "<|im_end|>", "<|endoftext|>", ("<|im_end|>", "<|endoftext|>"), True),
    "mistral": Format("mistral", "mistral", MISTRAL_TEMPLATE, ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"), "<s>",
                      "</s>", "<unk>", ("</s>",), False),
    "nemotron-nas": Format("nemotron-nas", "nemotron-nas", LLAMA3_TEMPLATE, tuple(LLAMA3_SPECIALS),
                           "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>",
                           ("<|end_of_text|>", "<|eot_id|>"), True),
}


def build_tokenizer(fmt: Format, template: str | None = None, corpus_rows: int = 3000):
    from core.data.synth import corpus
    from core.tokenizer import train_tokenizer

    return train_tokenizer(itertools.islice(corpus(), corpus_rows), vocab_size=512, special_tokens=list(fmt.specials),
                           bos=fmt.bos, eos=fmt.eos, pad=fmt.pad, chat_template=template or fmt.template)


def build_checkpoint(fmt: Format, out: Path, seed: int = 0) -> Path:
    """A random-weight checkpoint of the format's architecture: 2 layers, hidden 64, head_dim
    32 (vLLM-CPU attention needs it), FFN 256 (a width DeciLM can represent)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, MistralConfig, Qwen2Config

    from core.checkpoint import save_hf

    torch.manual_seed(seed)
    tok = build_tokenizer(fmt)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in (("eos", fmt.eos), ("pad", fmt.pad))}
    shape = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024, rms_norm_eps=1e-5,
                 tie_word_embeddings=False, eos_token_id=ids["eos"], pad_token_id=ids["pad"],
                 bos_token_id=tok.bos_token_id)
    cls = {"llama": LlamaConfig, "nemotron-nas": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}
    cfg = cls[fmt.architecture](**shape)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(cfg).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, pad_token_id=ids["pad"],
        eos_token_id=[tok.convert_tokens_to_ids(t) for t in fmt.stop])
    if fmt.architecture == "nemotron-nas":
        from nas.format import llama_to_decilm, save_decilm

        return save_decilm(llama_to_decilm(model), tok, out)
    return save_hf(model, tok, out)
