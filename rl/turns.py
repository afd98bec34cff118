"""Token ids of a multi-turn episode, from the checkpoint's own chat template.

The episode's ids are never re-tokenized: the policy's turns are the ids it generated, and
each environment answer adds the ids the template writes between the end of that turn and
the next generation prompt. They are found as core.tokenization finds assistant masks, by
rendering the conversation through the assistant turn (prefix) and through the answer with
the generation prompt (prefix + message): the answer's ids are the difference, which
requires the prefix to be a token prefix of the longer rendering (a `TemplateError`
otherwise). What the template writes after the turn's end-of-turn token (ChatML's newline)
belongs to the environment's ids, so it is masked like them.

Tools are shown through the template's `tools` argument where the template uses it, else
in the Llama-Nemotron / When2Call form: `<AVAILABLE_TOOLS>[...]</AVAILABLE_TOOLS>` at the
head of the first user turn (`tools_block`: the JSON specs, or for a small model with a short
context only each tool's signature, `name(arg, ...)`). Tool answers are `tool` turns where the template renders that
role, else user turns holding `<TOOL_RESPONSE>...</TOOL_RESPONSE>`.
"""
from __future__ import annotations

import json
from typing import Any

from core.tokenization import TemplateError, place_toggle

AVAILABLE_OPEN, AVAILABLE_CLOSE = "<AVAILABLE_TOOLS>", "</AVAILABLE_TOOLS>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<TOOL_RESPONSE>", "</TOOL_RESPONSE>"
TOOLS_SHOWN = ("specs", "signatures")


def tools_block(tools: list[dict[str, Any]], shown: str = "specs") -> str:
    """The `<AVAILABLE_TOOLS>` head of the first user turn. `specs`: the tools' JSON specs;
    `signatures`: `name(arg, ...)` per tool, a fifth of the tokens for the calculator alone."""
    if shown == "specs":
        body = json.dumps(tools)
    elif shown == "signatures":
        body = "; ".join(f"{t['name']}({', '.join(t.get('parameters', {}).get('properties', {}))})" for t in tools)
    else:
        raise ValueError(f"tools shown as {shown!r}: expected one of {TOOLS_SHOWN}")
    return f"{AVAILABLE_OPEN}{body}{AVAILABLE_CLOSE}\n\n"


def _special_ids(tok) -> set[int]:
    ids = set(tok.all_special_ids)
    ids.update(i for i, t in tok.added_tokens_decoder.items() if t.special)
    return ids


def _renders_tool_role(tok) -> bool:
    probe = "reforge-tool-probe"
    msgs = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"},
            {"role": "tool", "name": "t", "content": probe}]
    try:
        return probe in tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    except Exception:  # jinja raise_exception on an unknown role, and the like
        return False


class TurnRenderer:
    """Prompt ids and environment-answer ids of one checkpoint's template."""

    def __init__(self, tokenizer, tools_shown: str = "specs"):
        self.tok = tokenizer
        self.tools_shown = tools_shown
        if not getattr(tokenizer, "chat_template", None):
            raise TemplateError(f"{getattr(tokenizer, 'name_or_path', 'tokenizer')}: no chat_template")
        self.special = _special_ids(tokenizer)
        self.template_takes_tools = "tools" in tokenizer.chat_template
        self.tool_role = _renders_tool_role(tokenizer)

    def conversation(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The starting messages as the template takes them: toggle placed (core.tokenization),
        and the tools in the first user turn unless the template shows them itself."""
        messages = [dict(m) for m in place_toggle(self.tok, messages)]
        if tools and not self.template_takes_tools:
            first = next(i for i, m in enumerate(messages) if m["role"] == "user")
            if AVAILABLE_OPEN not in messages[first]["content"]:
                messages[first]["content"] = tools_block(tools, self.tools_shown) + messages[first]["content"]
        return messages

    def as_template_message(self, message: dict[str, Any]) -> dict[str, Any]:
        if message["role"] != "tool" or self.tool_role:
            return message
        return {"role": "user", "content": f"{RESPONSE_OPEN}{message['content']}{RESPONSE_CLOSE}"}

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               add_generation_prompt: bool) -> list[int]:
        kwargs: dict[str, Any] = {}
        if tools and self.template_takes_tools:
            kwargs["tools"] = [{"type": "function", "function": t} for t in tools]
        out = self.tok.apply_chat_template([self.as_template_message(m) for m in messages], tokenize=True,
                                           add_generation_prompt=add_generation_prompt, return_dict=True, **kwargs)
        return list(out["input_ids"])

    def prompt_ids(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[int]:
        """Ids of the conversation (already `conversation()`-prepared) ending in the generation prompt."""
        return self.render(messages, tools, add_generation_prompt=True)

    def answer_ids(self, history: list[dict[str, Any]], answer: list[dict[str, Any]], tools: list[dict[str, Any]],
                   last_generated: int | None) -> list[int]:
        """Ids between the end of the policy's last turn (`history` ends with it) and the next
        generation prompt: the rest of that turn's closing, the answer turns, the prompt."""
        base = self.render(history, tools, add_generation_prompt=False)
        full = self.render(history + answer, tools, add_generation_prompt=True)
        if full[:len(base)] != base:
            raise TemplateError(
                f"turn {len(history) - 1}: the conversation through the assistant turn is not a token prefix of it "
                "with the environment's answer appended (the template rewrites earlier turns, e.g. drops past "
                "reasoning, or its tokens merge across the boundary); multi-turn episodes need a template that "
                "only appends")
        end = max((j for j in range(len(base)) if base[j] in self.special), default=None)
        if end is None:
            raise TemplateError("the template writes no special end-of-turn token after an assistant turn")
        closing = base[end + 1:] if last_generated == base[end] else base[end:]
        return closing + full[len(base):]
