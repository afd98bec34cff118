"""`reforge rewards check NAME`: what a plugin author runs before shipping a reward.

Exercises the reward on canned samples (every built-in row type, both reasoning modes, empty
and odd completions) and reports: results of the wrong type, exceptions, different scores on
a second identical call, time per call, and whether the function survives the trip to a Ray
worker and to the worker process each call runs in (cloudpickle round trip).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .combine import RewardComponent
from .runner import RewardRunner
from .sample import RewardSample

_USER = [{"role": "user", "content": "What is 3/4 as a decimal?"}]


def canned_samples() -> list[RewardSample]:
    code = "```python\ndef f(x):\n    return x + 1\n```"
    tool = {"type": "tool", "correct": "tool_call", "tools": [{"name": "weather"}]}
    return [
        RewardSample("math-on", _USER, "<think>3 over 4</think>The answer is \\boxed{0.75}.",
                     {"type": "math", "answer": "3/4"}, "on"),
        RewardSample("math-off", _USER, "The answer is \\boxed{0.75}.", {"type": "math", "answer": "3/4"}, "off"),
        RewardSample("math-unclosed", _USER, "<think>never ends \\boxed{0.75}", {"type": "math", "answer": "3/4"}, "on"),
        RewardSample("code", _USER, f"<think>add one</think>{code}",
                     {"type": "code", "entry_point": "f", "tests": ["assert f(1) == 2"]}, "on"),
        RewardSample("if", _USER, "all lowercase words here", {"type": "if", "constraints": [{"kind": "lowercase"}]}, "off"),
        RewardSample("tool", _USER, '<TOOLCALL>[{"name": "weather", "arguments": {}}]</TOOLCALL>', tool, "off"),
        RewardSample("empty", _USER, "", {"type": "math", "answer": "1"}, "off"),
        RewardSample("unicode", _USER, "<think>ü∑</think>\u202e答案 \\boxed{1}", {"type": "math", "answer": "1"}, "on"),
    ]


@dataclass
class CheckReport:
    name: str
    kind: str = ""
    type_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)
    nondeterministic: list[str] = field(default_factory=list)
    seconds_per_call: float = 0.0
    shippable: bool = False
    ship_error: str = ""

    @property
    def ok(self) -> bool:
        return not self.type_errors and self.shippable

    def lines(self) -> list[str]:
        out = [f"reward {self.name} ({self.kind}): {'OK' if self.ok else 'FAILED'}",
               f"  time per call: {self.seconds_per_call * 1000:.1f} ms",
               f"  ships to a Ray worker: {'yes' if self.shippable else 'NO - ' + self.ship_error}"]
        for title, items in (("wrong return type", self.type_errors), ("raised", self.exceptions),
                             ("timed out", self.timeouts), ("non-deterministic", self.nondeterministic)):
            out += [f"  {title}: {item}" for item in items]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "ok": self.ok, "type_errors": self.type_errors,
                "exceptions": self.exceptions, "timeouts": self.timeouts,
                "nondeterministic": self.nondeterministic, "seconds_per_call": self.seconds_per_call,
                "shippable": self.shippable, "ship_error": self.ship_error}


def _shippable(fn: Any) -> str:
    """'' when fn survives cloudpickle (how Ray ships functions), else the error."""
    import cloudpickle

    try:
        cloudpickle.loads(cloudpickle.dumps(fn))
    except Exception as e:  # noqa: BLE001 - any pickling error is the answer
        return f"{type(e).__name__}: {e}"
    return ""


def check_reward(component: RewardComponent, samples: list[RewardSample] | None = None) -> CheckReport:
    samples = samples or canned_samples()
    fn = component.resolve()
    report = CheckReport(component.name, fn.kind)
    report.ship_error = _shippable(fn.fn)
    report.shippable = not report.ship_error
    if not report.shippable and fn.runs_in == "process":
        return report  # it cannot reach the worker process it would run in
    runner = RewardRunner(fn, component.timeout_s, max_workers=1)
    start = time.monotonic()
    first, _ = runner.score(samples)
    report.seconds_per_call = (time.monotonic() - start) / len(samples)
    second, _ = runner.score(samples)
    for sample, a, b in zip(samples, first, second):
        error = a.result.info.get("error", "") if (a.failed or a.timed_out) else ""
        if a.timed_out:
            report.timeouts.append(f"{sample.id}: {error}")
        elif error.startswith("bad return"):
            report.type_errors.append(f"{sample.id}: {error}")
        elif a.failed:
            report.exceptions.append(f"{sample.id}: {error}")
        elif a.result.score != b.result.score:
            report.nondeterministic.append(f"{sample.id}: {a.result.score} then {b.result.score}")
    runner.close()
    return report
