"""Token ids and loss masks for rendered conversations.

Each rendered piece (bos, role headers, message bodies) is tokenized on its own and the
ids concatenated. The tokenizer isolates newlines and special tokens, so this equals
tokenizing the whole text (a test checks it against `apply_chat_template`), and it gives
exact token-level spans without offset bookkeeping.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.chat import BOS, EOT, header, render


@dataclass
class EncodedConversation:
    input_ids: list[int]
    loss_mask: list[int]  # 1 where the token belongs to an assistant turn (content + eot)
    prompt_len: int  # tokens before the first assistant content


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def encode_conversation(tok, messages: list[dict[str, str]]) -> EncodedConversation:
    ids = _ids(tok, BOS)
    mask = [0] * len(ids)
    prompt_len = None
    for m in messages:
        h = _ids(tok, header(m["role"]))
        body = _ids(tok, m["content"] + EOT)
        trainable = 1 if m["role"] == "assistant" else 0
        ids += h
        mask += [0] * len(h)
        if trainable and prompt_len is None:
            prompt_len = len(ids)
        ids += body
        mask += [trainable] * len(body)
    return EncodedConversation(ids, mask, prompt_len if prompt_len is not None else len(ids))


def encode_prompt(tok, messages: list[dict[str, str]]) -> list[int]:
    """Ids of a prompt ending with the assistant header, ready for generation."""
    return _ids(tok, render(messages, add_generation_prompt=True).text)
