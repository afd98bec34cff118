"""The reasoning toggle and the per-checkpoint chat settings.

Conversations are rendered by the checkpoint's own chat template
(`tokenizer.apply_chat_template`, see core.tokenization); this module knows no template's
special tokens. What it owns is the reasoning convention of Llama-Nemotron: the toggle is
the system prompt `detailed thinking on` / `detailed thinking off`, and in `on` mode the
assistant content is `<think>...</think>` followed by the answer region.

The toggle texts, the think tags and where the toggle goes are `ChatSettings`, stored with
the checkpoint (the `reforge_chat` key of its `tokenizer_config.json`, which
`save_pretrained` keeps), so every stage that loads the tokenizer renders alike.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

SYSTEM_PROMPTS = {"on": "detailed thinking on", "off": "detailed thinking off"}
# Default think tags; a checkpoint may name others (chat_settings(tok).think_open/close).
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
SETTINGS_KEY = "reforge_chat"  # the tokenizer_config.json key holding ChatSettings
TOGGLE_PLACEMENTS = ("auto", "system", "user")


@dataclass
class ChatSettings:
    """How the reasoning toggle and the think block are written for one checkpoint (also a
    config section: `model.chat` in the SFT recipe writes it into the trained checkpoint)."""

    toggle_placement: str = field(default="auto", metadata={"help": (
        "system | user (prepended to the first user turn) | auto (system if the template renders one)")})
    toggle_separator: str = field(default="\n\n", metadata={"help": (
        "between the toggle and the user text when placed in the user turn")})
    system_prompts: dict[str, str] = field(default_factory=lambda: dict(SYSTEM_PROMPTS), metadata={"help": (
        "mode -> toggle text")})
    think_open: str = field(default=THINK_OPEN, metadata={"help": "the tag that opens the reasoning block"})
    think_close: str = field(default=THINK_CLOSE, metadata={"help": "the answer region is everything after it"})

    def __post_init__(self) -> None:
        if self.toggle_placement not in TOGGLE_PLACEMENTS:
            raise ValueError(f"chat.toggle_placement: expected one of {TOGGLE_PLACEMENTS}, "
                             f"got {self.toggle_placement!r}")
        if set(self.system_prompts) != set(SYSTEM_PROMPTS):
            raise ValueError(f"chat.system_prompts: expected exactly the keys {sorted(SYSTEM_PROMPTS)}, "
                             f"got {sorted(self.system_prompts)}")
        if not self.think_open or not self.think_close:
            raise ValueError("chat.think_open / chat.think_close must be non-empty")

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "chat") -> "ChatSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
        return cls(**obj)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def chat_settings(tok) -> ChatSettings:
    """The settings stored with this tokenizer's checkpoint, defaults for what it leaves out."""
    stored = getattr(tok, "init_kwargs", {}).get(SETTINGS_KEY) or {}
    return ChatSettings.from_dict(dict(stored), where=f"tokenizer_config.json '{SETTINGS_KEY}'")


def set_chat_settings(tok, settings: ChatSettings) -> None:
    """Attach settings to the tokenizer; `save_pretrained` writes them with the checkpoint."""
    tok.init_kwargs[SETTINGS_KEY] = settings.to_dict()


def with_system_prompt(messages: list[dict[str, str]], reasoning: str,
                       settings: ChatSettings | None = None) -> list[dict[str, str]]:
    """Prepend the toggle as the only system content (the model card's rule: instructions
    belong in the user turn). An existing system turn is replaced. Templates without a
    system role get it moved into the first user turn when rendered (core.tokenization)."""
    prompts = (settings or ChatSettings()).system_prompts
    if reasoning not in prompts:
        raise ValueError(f"reasoning must be 'on' or 'off', got {reasoning!r}")
    rest = [m for m in messages if m["role"] != "system"]
    return [{"role": "system", "content": prompts[reasoning]}, *rest]


def format_response(answer: str, reasoning: str, thought: str | None = None,
                    settings: ChatSettings | None = None) -> str:
    """Assistant content for a mode: `<think>thought</think>answer` or just the answer."""
    s = settings or ChatSettings()
    if reasoning == "on":
        return f"{s.think_open}{thought or ''}{s.think_close}{answer}"
    return answer


def split_think(completion: str, settings: ChatSettings | None = None) -> tuple[str | None, str | None]:
    """Split a completion into (thought, answer).

    thought is None when there is no think block; answer is None when a think block was
    opened but never closed (such a completion has no answer in `on` mode).
    """
    s = settings or ChatSettings()
    if s.think_open not in completion and s.think_close not in completion:
        return None, completion
    if s.think_close not in completion:
        return completion.split(s.think_open, 1)[-1], None
    before, after = completion.split(s.think_close, 1)
    return before.split(s.think_open, 1)[-1], after
