"""The chat format with the reasoning toggle, and prompt/response spans.

Llama-3-style role headers. The toggle is the system prompt, exactly as Llama-Nemotron:
`detailed thinking on` / `detailed thinking off`. In `on` mode the assistant content is
`<think>...</think>` followed by the answer; in `off` mode it carries no think block.

The same Jinja template is stored in the tokenizer (`chat_template`), so HF
`apply_chat_template`, vLLM's chat API and `render()` here produce identical text and
therefore identical token ids.
"""
from __future__ import annotations

from dataclasses import dataclass

BOS = "<|begin_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
PAD = "<|pad|>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
SPECIAL_TOKENS = [BOS, START_HEADER, END_HEADER, EOT, PAD]
# Think tags are ordinary (non-special) added tokens: they must survive decoding with
# skip_special_tokens=True, which is what vLLM does by default.
THINK_TOKENS = [THINK_OPEN, THINK_CLOSE]

SYSTEM_PROMPTS = {"on": "detailed thinking on", "off": "detailed thinking off"}

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def header(role: str) -> str:
    return f"{START_HEADER}{role}{END_HEADER}\n\n"


def with_system_prompt(messages: list[dict[str, str]], reasoning: str) -> list[dict[str, str]]:
    """Prepend the toggle as the only system content (the model card's rule: instructions
    belong in the user turn). An existing system turn is replaced."""
    if reasoning not in SYSTEM_PROMPTS:
        raise ValueError(f"reasoning must be 'on' or 'off', got {reasoning!r}")
    rest = [m for m in messages if m["role"] != "system"]
    return [{"role": "system", "content": SYSTEM_PROMPTS[reasoning]}, *rest]


def format_response(answer: str, reasoning: str, thought: str | None = None) -> str:
    """Assistant content for a mode: `<think>thought</think>answer` or just the answer."""
    if reasoning == "on":
        return f"{THINK_OPEN}{thought or ''}{THINK_CLOSE}{answer}"
    return answer


@dataclass(frozen=True)
class Span:
    """Half-open character range [start, end) of one message's trainable text."""

    start: int
    end: int
    role: str


@dataclass(frozen=True)
class Rendered:
    text: str
    spans: list[Span]  # one per message: content plus its closing <|eot_id|>

    def response_spans(self) -> list[Span]:
        return [s for s in self.spans if s.role == "assistant"]


def render(messages: list[dict[str, str]], add_generation_prompt: bool = False) -> Rendered:
    """Render exactly as CHAT_TEMPLATE does, recording where each message's content lies.

    The span of a message covers its content and the `<|eot_id|>` that closes it, because
    the model must learn to end its turn.
    """
    parts = [BOS]
    pos = len(BOS)
    spans = []
    for m in messages:
        h = header(m["role"])
        parts.append(h)
        pos += len(h)
        body = m["content"] + EOT
        parts.append(body)
        spans.append(Span(pos, pos + len(body), m["role"]))
        pos += len(body)
    if add_generation_prompt:
        parts.append(header("assistant"))
    return Rendered("".join(parts), spans)


def split_think(completion: str) -> tuple[str | None, str | None]:
    """Split a completion into (thought, answer).

    thought is None when there is no think block; answer is None when a think block was
    opened but never closed (such a completion has no answer in `on` mode).
    """
    if THINK_OPEN not in completion and THINK_CLOSE not in completion:
        return None, completion
    if THINK_CLOSE not in completion:
        return completion.split(THINK_OPEN, 1)[-1], None
    before, after = completion.split(THINK_CLOSE, 1)
    return before.split(THINK_OPEN, 1)[-1], after
