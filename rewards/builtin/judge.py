"""An LLM judge over any OpenAI-compatible endpoint (vLLM `serve`, TGI, hosted APIs).

The judge sees the prompt, the response and the reference answer if the row has one, and
must reply `SCORE: N` with N in 0..10; the reward is N/10. A reply without a score raises,
so it is counted as a failure rather than silently scored.
"""
from __future__ import annotations

import os
import re

import requests

from ..registry import reward
from ..sample import RewardResult, RewardSample

SYSTEM = ("You are a strict grader. Judge whether the response correctly and helpfully answers "
          "the user's request. Reply with exactly one line: SCORE: N, where N is an integer from "
          "0 (useless or wrong) to 10 (perfect).")
SCORE_REGEX = r"SCORE: (10|[0-9])"
_SCORE = re.compile(r"SCORE:\s*(10|[0-9])\b")


def judge_messages(sample: RewardSample) -> list[dict[str, str]]:
    question = "\n".join(m["content"] for m in sample.prompt_messages if m["role"] == "user")
    reference = sample.reward_spec.get("answer") or sample.reward_spec.get("reference")
    parts = [f"[Request]\n{question}", f"[Response]\n{sample.completion}"]
    if reference is not None:
        parts.append(f"[Reference answer]\n{reference}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


@reward("judge", runs_in="caller")  # an HTTP call bounded by request_timeout_s
def judge_reward(sample: RewardSample, base_url: str = "", model: str = "",
                 api_key_env: str = "OPENAI_API_KEY", max_tokens: int = 8,
                 guided: bool = True, request_timeout_s: float = 60.0) -> RewardResult:
    """`guided` asks a vLLM server to constrain the reply to the score format."""
    if not base_url or not model:
        raise ValueError("judge needs options.base_url (…/v1) and options.model")
    body = {"model": model, "messages": judge_messages(sample), "max_tokens": max_tokens,
            "temperature": 0.0}
    if guided:
        body["structured_outputs"] = {"regex": SCORE_REGEX}
    headers = {}
    if os.environ.get(api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[api_key_env]}"
    resp = requests.post(f"{base_url.rstrip('/')}/chat/completions", json=body, headers=headers,
                         timeout=request_timeout_s)
    if resp.status_code != 200:
        raise RuntimeError(f"judge endpoint {base_url} answered {resp.status_code}: {resp.text[:300]}")
    text = resp.json()["choices"][0]["message"]["content"] or ""
    match = _SCORE.search(text)
    if match is None:
        raise ValueError(f"judge reply has no 'SCORE: N': {text[:200]!r}")
    return RewardResult(int(match.group(1)) / 10, {"judge_reply": text})
