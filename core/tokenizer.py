"""Train the embedded default tokenizer locally on the project's own synthetic corpus.

Byte-level BPE with every newline isolated before the byte-level split. Why: a rendered
prompt ends with `\n\n` and the response starts right after it; isolating newlines makes
the token ids of prompt + response equal the ids of the whole conversation, so loss masks
and rollouts agree on token boundaries.

Its chat format (Llama-3-style role headers) is defined here and stored in the tokenizer as
its `chat_template`; the rest of the toolkit only ever calls `apply_chat_template`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from core.chat import THINK_CLOSE, THINK_OPEN

BOS = "<|begin_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = [BOS, START_HEADER, END_HEADER, EOT, PAD]
# Think tags are ordinary (non-special) added tokens: they must survive decoding with
# skip_special_tokens=True, which is what vLLM does by default.
THINK_TOKENS = [THINK_OPEN, THINK_CLOSE]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024,
                    special_tokens: list[str] | None = None, extra_tokens: list[str] | None = None,
                    bos: str | None = BOS, eos: str = EOT, pad: str = PAD,
                    chat_template: str = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    """The embedded tokenizer by default; other special tokens and another template build
    stand-ins for other checkpoints' formats (tests), with the same trainer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\n"), behavior="isolated"),
        pre_tokenizers.Split(Regex(r"\d"), behavior="isolated"),  # one token per digit: arithmetic is learnable
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens or SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS + (extra_tokens or [])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = chat_template
    return fast


def save_tokenizer(tok: PreTrainedTokenizerFast, out_dir: str | Path) -> None:
    tok.save_pretrained(str(out_dir))
