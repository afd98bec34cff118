"""The Generator role: requests in, completions with token ids and logprobs out.

Engines here are plain in-process classes; `rl/` wraps them in Ray actors. Logprobs are
always those of the unmodified model distribution (before temperature / top-p), which is
what the trainer recomputes, so generator and trainer numbers are comparable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingSettings:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Completion:
    prompt_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]  # one per generated token, under the raw model distribution
    text: str
    finish_reason: str  # "stop" (eos or a stop string) or "length"
    prompt_index: int = 0  # which request this sample answers
    meta: dict = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[Completion]:
        """`n` completions per prompt, grouped by prompt in request order."""
        ...

    def update_weights(self, named_tensors: dict) -> None:
        """Load new policy weights (a full state dict in HF names)."""
        ...

    def prompt_logprobs(self, sequences: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        """Logprob of every token after prompt_len, for parity checks against the trainer."""
        ...
