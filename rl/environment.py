"""The Environment role: multi-turn episodes with token-level bookkeeping.

An episode starts from a dataset row; the policy writes a turn; the environment answers
with observation turns (tool results, feedback) or ends the episode; at the end it scores
the whole episode. Single-turn verifiable rewards are the one-step case (an environment
whose every first answer is `done`).

An `Episode` carries everything the trainer needs token by token: the prompt ids, the ids
after the prompt (policy turns and environment answers, in order), a loss mask that is 1
only on the policy's tokens, and the generator's log-prob of each policy token (0.0 and
masked on environment tokens) for the importance-sampling correction. `spans` records
which ids came from whom.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from core.data.schema import Row
from rewards.sample import RewardResult
from rl.turns import TOOLS_SHOWN

FINISH_REASONS = ("done", "turn_limit", "length")


@dataclass
class EpisodeStart:
    messages: list[dict[str, Any]]  # the conversation the policy starts from (toggle system turn included)
    tools: list[dict[str, Any]] = field(default_factory=list)  # {"name", "description", "parameters"} shown to it


@dataclass
class Feedback:
    """The environment's answer to one policy turn."""

    messages: list[dict[str, Any]] = field(default_factory=list)  # observation turns, e.g. {"role": "tool", ...}
    done: bool = False  # the episode is over (scored by Environment.score)
    info: dict[str, Any] = field(default_factory=dict)  # counters such as tool_calls / tool_errors


@dataclass
class Span:
    source: str  # "policy" | "environment"
    start: int  # into Episode.response_ids
    end: int


@dataclass
class Episode:
    row: Row
    sample: int  # index within the row's group
    messages: list[dict[str, Any]]  # the conversation as the template takes it, growing turn by turn
    tools: list[dict[str, Any]]
    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)  # everything after the prompt
    loss_mask: list[int] = field(default_factory=list)  # 1 on policy tokens, 0 on environment tokens
    logprobs: list[float] = field(default_factory=list)  # generator log-prob per policy token, 0.0 elsewhere
    spans: list[Span] = field(default_factory=list)
    turns: int = 0  # policy turns written
    finish: str = ""  # "" while running, then one of FINISH_REASONS
    counters: dict[str, float] = field(default_factory=dict)  # summed Feedback.info numbers
    reward: float = 0.0
    reward_info: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return bool(self.finish)

    @property
    def truncated(self) -> bool:
        """Ran out of tokens (per turn or per episode): overlong masking drops its loss."""
        return self.finish == "length"

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.response_ids

    def policy_turns(self) -> list[str]:
        return [m["content"] for m in self.messages if m["role"] == "assistant"]

    def add(self, source: str, ids: list[int], logprobs: list[float] | None = None) -> None:
        start = len(self.response_ids)
        self.response_ids += ids
        self.loss_mask += [1 if source == "policy" else 0] * len(ids)
        self.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(ids)
        self.spans.append(Span(source, start, len(self.response_ids)))


class Environment(Protocol):
    def start(self, row: Row) -> EpisodeStart:
        """The conversation and tools an episode of `row` starts from."""
        ...

    def step(self, episodes: list[Episode], turns: list[str]) -> list[Feedback]:
        """Answer the latest turn of each live episode (batched: tools run concurrently)."""
        ...

    def score(self, episodes: list[Episode]) -> list[RewardResult]:
        """The reward of each finished episode, whatever ended it."""
        ...

    def close(self) -> None:
        ...


@dataclass
class EnvironmentConfig:
    """Which environment GRPO rolls out in, and its limits. `name` empty = single-turn rollouts."""

    name: str = field(default="", metadata={"help": (
        "empty = single-turn rollouts | tools (rl/tool_environment.py) | package.module:Class (built as "
        "Class(tokenizer, cfg, scorer))")})
    tools: list[str] = field(default_factory=lambda: ["calculator"], metadata={"help": (
        "registered names, module:function or entry points")})
    max_turns: int = field(default=4, metadata={"help": "policy turns per episode"})
    max_tokens_per_turn: int = field(default=96, metadata={"help": "one policy turn (generation max_tokens)"})
    max_episode_tokens: int = field(default=384, metadata={"help": (
        "all ids after the prompt: policy turns and environment answers")})
    tools_shown: str = field(default="specs", metadata={"help": (
        "how the first user turn lists the tools when the chat template takes no `tools` argument: specs "
        "(JSON, the Llama-Nemotron <AVAILABLE_TOOLS> form) | signatures (`name(arg, ...)`: short, for tiny "
        "models); tool-use SFT traces must show them the same way (sft data.tools_shown)")})
    tool_timeout_s: float = field(default=5.0, metadata={"help": "per call, unless the tool names its own"})
    max_observation_chars: int = field(default=1024, metadata={"help": (
        "a tool answer is cut after this many characters")})
    tool_workers: int = field(default=8, metadata={"help": (
        "concurrent tool calls (threads, and worker processes per process tool)")})
    eval_without_tools: bool = field(default=False, metadata={"help": (
        "held-out evaluation also offers no tool (keys heldout_accuracy_<mode>_no_tools)")})
    decision_prompts: int = field(default=0, metadata={"help": (
        "synthetic When2Call tool-decision rows added to the training prompts")})

    def __post_init__(self) -> None:
        for key in ("max_turns", "max_tokens_per_turn", "max_episode_tokens", "tool_workers"):
            if getattr(self, key) < 1:
                raise ValueError(f"key 'environment.{key}': must be >= 1, got {getattr(self, key)}")
        if self.max_tokens_per_turn > self.max_episode_tokens:
            raise ValueError("keys 'environment.max_tokens_per_turn', 'environment.max_episode_tokens': "
                             "a turn cannot be longer than the episode")
        if self.decision_prompts < 0 or (self.decision_prompts and not self.name):
            raise ValueError("key 'environment.decision_prompts': must be >= 0, and needs an environment "
                             f"(environment.name), got {self.decision_prompts} with name {self.name!r}")
        if self.tools_shown not in TOOLS_SHOWN:
            raise ValueError(f"key 'environment.tools_shown': expected one of {TOOLS_SHOWN}, got {self.tools_shown!r}")
        if self.tool_timeout_s <= 0:
            raise ValueError(f"key 'environment.tool_timeout_s': must be > 0, got {self.tool_timeout_s}")


def make_environment(cfg: EnvironmentConfig, tokenizer, scorer) -> Environment:
    """The environment `cfg.name` names; its tools resolve here, before any actor starts."""
    if cfg.name == "tools":
        from rl.tool_environment import ToolEnvironment

        return ToolEnvironment(tokenizer, cfg, scorer)
    if ":" in cfg.name:
        from rewards.registry import import_target

        return import_target(cfg.name, "environment")(tokenizer, cfg, scorer)
    raise ValueError(f"key 'environment.name': expected 'tools' or 'package.module:Class', got {cfg.name!r}")
