"""Token ids and assistant loss masks from the checkpoint's own chat template.

Every prompt and conversation goes through `tokenizer.apply_chat_template`, so training,
rollouts, preference pairs and evaluation see exactly the ids the model is served with.

Loss masks are derived from the template itself, for any template:
- a template with `{% generation %}` markers gives them directly (HF's assistant mask);
- otherwise each assistant turn i is located by rendering the conversation up to turn i
  with the generation prompt (where the turn's text starts) and through turn i (where it
  ends), both of which must be token-for-token prefixes of the whole rendering. The turn is
  trained up to and including its end-of-turn token (the last special token of the span);
  what a template writes after it (ChatML's newline) is never generated, so not trained.
A template that rewrites earlier turns (e.g. drops past reasoning) or whose tokens merge
across a turn boundary cannot be segmented this way: that is a `TemplateError` naming the
turn, never a silently wrong mask.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.chat import SYSTEM_PROMPTS, ChatSettings, chat_settings


class TemplateError(ValueError):
    """The chat template cannot render or segment a conversation as the toolkit needs."""


@dataclass
class EncodedConversation:
    input_ids: list[int]
    loss_mask: list[int]  # 1 where the token belongs to an assistant turn (content + end-of-turn)
    prompt_len: int  # tokens before the first assistant content


def _supports_system(tok) -> bool:
    """Whether the template renders a system turn (some raise on it, some drop it)."""
    cache = tok.__dict__.setdefault("_reforge_system_role", {})
    key = tok.chat_template
    if key not in cache:
        probe = "reforge-system-probe"
        try:
            text = tok.apply_chat_template([{"role": "system", "content": probe}, {"role": "user", "content": "u"}],
                                           tokenize=False, add_generation_prompt=True)
            cache[key] = probe in text
        except Exception:  # jinja raise_exception("roles must alternate ...") and the like
            cache[key] = False
    return cache[key]


def place_toggle(tok, messages: list[dict[str, str]], settings: ChatSettings | None = None) -> list[dict[str, str]]:
    """Messages as the template will take them: the canonical toggle text becomes this
    checkpoint's (ChatSettings.system_prompts), and a leading system turn moves into the
    first user turn when the settings say so or (auto) the template has no system role."""
    s = settings or chat_settings(tok)
    if not messages or messages[0]["role"] != "system":
        return messages
    mode = {text: mode for mode, text in SYSTEM_PROMPTS.items()}.get(messages[0]["content"])
    if mode is not None:  # the canonical toggle: written as this checkpoint's settings say
        messages = [{**messages[0], "content": s.system_prompts[mode]}, *messages[1:]]
    placement = s.toggle_placement
    if placement == "auto":
        placement = "system" if _supports_system(tok) else "user"
    if placement == "system":
        return messages
    system, rest = messages[0]["content"], list(messages[1:])
    for i, m in enumerate(rest):
        if m["role"] == "user":
            rest[i] = {**m, "content": system + s.toggle_separator + m["content"]}
            return rest
    raise TemplateError("the toggle goes into the first user turn, but the conversation has no user turn")


def _render(tok, messages: list[dict[str, str]], add_generation_prompt: bool) -> list[int]:
    if not getattr(tok, "chat_template", None):
        raise TemplateError(f"{getattr(tok, 'name_or_path', 'tokenizer')}: no chat_template; a chat checkpoint "
                            "carries one in tokenizer_config.json (or chat_template.jinja)")
    out = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt,
                                  return_dict=True)
    return list(out["input_ids"])


def encode_prompt(tok, messages: list[dict[str, str]]) -> list[int]:
    """Ids of a prompt ending with the template's generation prompt, ready for generation."""
    return _render(tok, place_toggle(tok, messages), add_generation_prompt=True)


def _special_ids(tok) -> set[int]:
    ids = set(tok.all_special_ids)
    ids.update(i for i, t in tok.added_tokens_decoder.items() if t.special)
    return ids


def _is_prefix(prefix: list[int], full: list[int]) -> bool:
    return len(prefix) <= len(full) and full[:len(prefix)] == prefix


def _generation_mask(tok, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    out = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    return list(out["input_ids"]), list(out["assistant_masks"])


def encode_conversation(tok, messages: list[dict[str, str]]) -> EncodedConversation:
    """Ids of the whole conversation and a mask of its assistant turns, from the template."""
    messages = place_toggle(tok, messages)
    if "{% generation %}" in (tok.chat_template or "") or "{%- generation %}" in (tok.chat_template or ""):
        ids, mask = _generation_mask(tok, messages)
    else:
        ids = _render(tok, messages, add_generation_prompt=False)
        mask = [0] * len(ids)
        special = _special_ids(tok)
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            start = _render(tok, messages[:i], add_generation_prompt=True)
            end = _render(tok, messages[:i + 1], add_generation_prompt=False)
            if not (_is_prefix(start, ids) and _is_prefix(end, ids) and len(start) < len(end)):
                raise TemplateError(
                    f"cannot segment assistant turn {i}: rendering the conversation up to it is not a token prefix "
                    "of the whole (the template rewrites earlier turns, e.g. drops past reasoning, or its tokens "
                    "merge across the turn boundary); give the template {% generation %} markers")
            stop = max((j for j in range(len(start), len(end)) if ids[j] in special), default=len(end) - 1)
            mask[len(start):stop + 1] = [1] * (stop + 1 - len(start))
    first = next((j for j, v in enumerate(mask) if v), len(ids))
    return EncodedConversation(ids, mask, first)


def encode_completion(tok, prompt_messages: list[dict[str, str]], content: str) -> list[int]:
    """The ids a model generates for one assistant turn after `prompt_messages` (its content
    and end-of-turn token), as the template writes them: preference pairs train on these."""
    enc = encode_conversation(tok, [*prompt_messages, {"role": "assistant", "content": content}])
    prompt = encode_prompt(tok, prompt_messages)
    if enc.input_ids[:len(prompt)] != prompt:
        raise TemplateError("the prompt with the generation prompt is not a token prefix of prompt + response")
    return [t for t, m in zip(enc.input_ids[len(prompt):], enc.loss_mask[len(prompt):]) if m]


def end_of_turn_ids(tok) -> list[int]:
    """The special token(s) that close an assistant turn in this template (Llama-3
    `<|eot_id|>`, ChatML `<|im_end|>`, Mistral `</s>`), found by rendering a probe turn."""
    msgs = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    enc = encode_conversation(tok, msgs)
    special = _special_ids(tok)
    return sorted({t for t, m in zip(enc.input_ids, enc.loss_mask) if m and t in special})


def stop_token_ids(tok, model_dir: str | Path | None = None) -> list[int]:
    """Where generation stops: the checkpoint's generation config eos id(s), the tokenizer's
    eos and the template's end-of-turn token."""
    ids = set(end_of_turn_ids(tok))
    if tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    gen = Path(model_dir) / "generation_config.json" if model_dir else None
    if gen is not None and gen.exists():
        eos = json.loads(gen.read_text()).get("eos_token_id")
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return sorted(ids)
