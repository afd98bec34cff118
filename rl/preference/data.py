"""Preference pairs from JSONL in four layouts, validated row by row, and their token ids.

    reforge       {"prompt": [messages] | "text", "chosen": str, "rejected": str,
                   "chosen_reward"?: x, "rejected_reward"?: y, "reasoning"?: "on"|"off"}
                  (TRL's explicit-prompt layout, with chosen/rejected as assistant message
                  lists, is read the same way)
    trl           TRL's implicit-prompt layout {"chosen": [messages], "rejected": [messages]}:
                  two full conversations sharing every turn but the last assistant one
    nemo_aligner  {"prompt": "already templated text", "chosen_response", "rejected_response",
                   "chosen_reward"?, "rejected_reward"?}; When2Call's preference files use
                  the same keys with {"messages": [user], "tools": [...]} instead of "prompt"
    nemo_rl       {"context": [messages], "completions": [{"rank", "completion", "reward"?}] x 2};
                  the lower rank is the chosen one

Missing rewards default to 1 (chosen) / 0 (rejected), as NeMo-Aligner does. A malformed row
is reported as `file:line: reason` (core.data.loading). A message-list prompt is rendered
with the checkpoint's chat template (with the reasoning toggle when the pair names a mode)
and each response is tokenized as the template writes an assistant turn, end-of-turn token
included, exactly as SFT's loss mask sees it; a text prompt is taken as already templated
and its responses as written.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.chat import with_system_prompt
from core.data.loading import LoadReport, load_records
from core.data.schema import REASONING_MODES, ROLES, RowError
from core.tokenization import encode_completion, encode_prompt
from rl.preference.batch import PairBatch

FORMATS = ("auto", "reforge", "trl", "nemo_aligner", "nemo_rl")


@dataclass
class PreferencePair:
    id: str
    prompt: list[dict[str, str]] | str  # chat messages, or a prompt already in the model's template
    chosen: str
    rejected: str
    chosen_reward: float = 1.0
    rejected_reward: float = 0.0
    reasoning: str | None = None  # "on"/"off" sets the toggle's system prompt; None keeps the prompt as is
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected,
               "chosen_reward": self.chosen_reward, "rejected_reward": self.rejected_reward, "meta": self.meta}
        if self.reasoning is not None:
            out["reasoning"] = self.reasoning
        return out


def tool_prompt(tools: list[Any], question: str) -> str:
    """When2Call's user turn: the tools in <AVAILABLE_TOOLS> (as evaluation.when2call renders it)."""
    specs = [json.loads(t) if isinstance(t, str) else t for t in tools]
    return f"<AVAILABLE_TOOLS>{json.dumps(specs)}</AVAILABLE_TOOLS>\n\n{question}"


def _messages(value: Any, key: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RowError(f"key '{key}': expected a non-empty list of {{role, content}} or a string")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise RowError(f"key '{key}[{i}]': expected {{role in {ROLES}, content: string}}")
    return value


def _text(value: Any, key: str) -> str:
    """A response: a string, one assistant message, or a list ending with one."""
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        value = _messages(value, key)[-1]["content"]
    if not isinstance(value, str):
        raise RowError(f"key '{key}': expected a string or an assistant message")
    return value


def _reward(obj: dict, key: str, default: float) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError(f"key '{key}': expected a number, got {value!r}")
    return float(value)


def _prompt(value: Any, key: str) -> list[dict[str, str]] | str:
    return value if isinstance(value, str) else _messages(value, key)


def _detect(obj: dict) -> str:
    if "completions" in obj:
        return "nemo_rl"
    if "chosen_response" in obj:
        return "nemo_aligner"
    if "chosen" in obj:
        return "reforge" if "prompt" in obj else "trl"
    raise RowError("cannot tell the layout: expected 'chosen' (reforge), 'chosen_response' (NeMo-Aligner) "
                   "or 'completions' (NeMo-RL)")


def validate_pair(obj: Any, default_id: str, fmt: str = "auto") -> PreferencePair:
    if not isinstance(obj, dict):
        raise RowError(f"expected a JSON object, got {type(obj).__name__}")
    fmt = _detect(obj) if fmt == "auto" else fmt
    reasoning = obj.get("reasoning")
    if reasoning is not None and reasoning not in REASONING_MODES:
        raise RowError(f"key 'reasoning': expected 'on' or 'off', got {reasoning!r}")
    pid = str(obj.get("id", obj.get("uuid", default_id)))
    if fmt == "nemo_rl":
        comps = obj.get("completions")
        if not isinstance(comps, list) or len(comps) != 2 or not all(isinstance(c, dict) for c in comps):
            raise RowError("key 'completions': expected exactly two {rank, completion, reward?} objects")
        if "rank" not in comps[0] or "rank" not in comps[1] or comps[0]["rank"] == comps[1]["rank"]:
            raise RowError("key 'completions': each completion needs a distinct 'rank' (lower = preferred)")
        best, worst = sorted(comps, key=lambda c: c["rank"])
        return PreferencePair(pid, _prompt(obj.get("context"), "context"), _text(best.get("completion"), "completion"),
                              _text(worst.get("completion"), "completion"), _reward(best, "reward", 1.0),
                              _reward(worst, "reward", 0.0), reasoning)
    if fmt == "nemo_aligner":
        if "prompt" in obj:
            prompt = _prompt(obj["prompt"], "prompt")
        else:
            messages = [dict(m) for m in _messages(obj.get("messages"), "messages")]
            if obj.get("tools") is not None:  # When2Call preference rows
                users = [m for m in messages if m["role"] == "user"]
                if not users:
                    raise RowError("key 'messages': no user turn to carry the tools")
                users[-1]["content"] = tool_prompt(obj["tools"], users[-1]["content"])
            prompt = messages
        chosen, rejected = _text(obj.get("chosen_response"), "chosen_response"), _text(obj.get("rejected_response"),
                                                                                         "rejected_response")
    elif fmt == "trl":
        chosen_conv, rejected_conv = _messages(obj.get("chosen"), "chosen"), _messages(obj.get("rejected"), "rejected")
        if chosen_conv[-1]["role"] != "assistant" or rejected_conv[-1]["role"] != "assistant":
            raise RowError("keys 'chosen'/'rejected': each conversation must end with the assistant turn")
        if chosen_conv[:-1] != rejected_conv[:-1] or len(chosen_conv) < 2:
            raise RowError("keys 'chosen'/'rejected': the two conversations must share every turn before the "
                           "last assistant one (the implicit prompt)")
        prompt, chosen, rejected = chosen_conv[:-1], chosen_conv[-1]["content"], rejected_conv[-1]["content"]
    elif fmt == "reforge":
        prompt = _prompt(obj.get("prompt"), "prompt")
        chosen, rejected = _text(obj.get("chosen"), "chosen"), _text(obj.get("rejected"), "rejected")
    else:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    return PreferencePair(pid, prompt, chosen, rejected, _reward(obj, "chosen_reward", 1.0),
                          _reward(obj, "rejected_reward", 0.0), reasoning, obj.get("meta", {}) or {})


def load_pairs(path: str | Path, fmt: str = "auto", on_error: str = "raise") -> LoadReport:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    return load_records(path, lambda obj, default_id: validate_pair(obj, default_id, fmt), on_error)


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def pair_kind(p: PreferencePair) -> str:
    """What a pair tests, for per-kind accuracy: its reward type (math / if / tool), math split
    by reasoning mode (math_on, math_off); "pairs" when the row says nothing."""
    kind = (p.meta.get("reward") or {}).get("type") if isinstance(p.meta, dict) else None
    if kind == "math" and p.reasoning:
        return f"math_{p.reasoning}"
    return str(kind or "pairs")


def encode_pairs(tok, pairs: list[PreferencePair], max_len: int) -> tuple[PairBatch, list[str]]:
    """Token ids of every pair; pairs longer than `max_len` are left out and named in the
    second return value (the caller reports the count)."""
    batch, too_long = PairBatch([], [], [], [], []), []
    for p in pairs:
        if isinstance(p.prompt, str):
            prompt, chosen, rejected = _ids(tok, p.prompt), _ids(tok, p.chosen), _ids(tok, p.rejected)
        else:
            messages = with_system_prompt(p.prompt, p.reasoning) if p.reasoning else p.prompt
            prompt = encode_prompt(tok, messages)
            chosen, rejected = encode_completion(tok, messages, p.chosen), encode_completion(tok, messages, p.rejected)
        if len(prompt) + max(len(chosen), len(rejected)) > max_len:
            too_long.append(p.id)
            continue
        batch.prompts.append(prompt)
        batch.chosen.append(chosen)
        batch.rejected.append(rejected)
        batch.chosen_rewards.append(p.chosen_reward)
        batch.rejected_rewards.append(p.rejected_reward)
        batch.kinds.append(pair_kind(p))
    return batch, too_long


def write_pairs(path: str | Path, pairs: list[PreferencePair]) -> Path:
    from core.data.loading import write_jsonl

    return write_jsonl(path, [p.to_dict() for p in pairs])
