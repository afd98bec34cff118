"""Running the calls of one turn (or of every live episode's turn) with a timeout each.

Every outcome is an observation string: a result, or an error the policy can read (unknown
tool, arguments that do not fit, the tool raised, it ran past its timeout, its process
died). Nothing a tool does ends the rollout. Tools that run in a process (the default for
user tools) go through rewards.isolation's killable worker pool, so a hung call is killed at
its timeout; tools that run on the caller's threads must bound their own work.
"""
from __future__ import annotations

import inspect
import json
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable

from rewards.isolation import ProcessCaller
from rl.tools.calls import ToolCall
from rl.tools.registry import Tool


@dataclass
class ToolResult:
    name: str
    content: str  # what the policy is shown
    error: str = ""  # "" | unknown_tool | bad_arguments | raised | timeout | crashed


class _KeywordCall:
    """Ships to a worker process: calls the tool with one dict of keyword arguments."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn

    def __call__(self, arguments: dict[str, Any]) -> Any:
        return self.fn(**arguments)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


class ToolRunner:
    """The tools an environment offers, each called with its timeout."""

    def __init__(self, tools: list[Tool], timeout_s: float = 5.0, max_chars: int = 1024, workers: int = 8):
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            raise ValueError(f"tools: duplicate names in {names}")
        self.tools = {t.name: t for t in tools}
        self.timeout_s, self.max_chars = timeout_s, max_chars
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reforge-tool")
        self._processes = {t.name: ProcessCaller(_KeywordCall(t.fn), workers) for t in tools if t.runs_in == "process"}

    def _timeout(self, tool: Tool) -> float:
        return tool.timeout_s if tool.timeout_s is not None else self.timeout_s

    def _cut(self, text: str) -> str:
        return text if len(text) <= self.max_chars else text[:self.max_chars] + " ...[truncated]"

    def _check(self, call: ToolCall) -> ToolResult | None:
        tool = self.tools.get(call.name)
        if tool is None:
            return ToolResult(call.name, f"error: unknown tool {call.name!r}; available: {sorted(self.tools)}",
                              "unknown_tool")
        try:
            inspect.signature(tool.fn).bind(**call.arguments)
        except TypeError as e:
            return ToolResult(call.name, f"error: bad arguments for tool {call.name!r}: {e}", "bad_arguments")
        return None

    def run(self, calls: list[ToolCall]) -> list[ToolResult]:
        """All calls concurrently; results in call order."""
        results: list[ToolResult | None] = [self._check(c) for c in calls]
        threaded, by_process = {}, {}
        for i, (call, res) in enumerate(zip(calls, results)):
            if res is not None:
                continue
            if self.tools[call.name].runs_in == "caller":
                threaded[i] = self._threads.submit(self.tools[call.name].fn, **call.arguments)
            else:
                by_process.setdefault(call.name, []).append(i)
        process_jobs = {name: self._threads.submit(self._processes[name].call_all, [calls[i].arguments for i in idx],
                                                   [self._timeout(self.tools[name])] * len(idx))
                        for name, idx in by_process.items()}
        for i, future in threaded.items():
            name, timeout = calls[i].name, self._timeout(self.tools[calls[i].name])
            try:
                results[i] = ToolResult(name, self._cut(_as_text(future.result(timeout=timeout))))
            except FutureTimeout:
                results[i] = ToolResult(name, f"error: tool {name!r} timed out after {timeout}s", "timeout")
            except Exception as e:  # noqa: BLE001 - the tool's own failure is the observation
                results[i] = ToolResult(name, f"error: tool {name!r} raised {type(e).__name__}: {e}", "raised")
        for name, job in process_jobs.items():
            for i, outcome in zip(by_process[name], job.result()):
                if outcome.kind == "ok":
                    results[i] = ToolResult(name, self._cut(_as_text(outcome.value)))
                else:
                    results[i] = ToolResult(name, f"error: tool {name!r} {_OUTCOME[outcome.kind]}: {outcome.error}",
                                            outcome.kind)
        return [r for r in results if r is not None]

    def close(self) -> None:
        for caller in self._processes.values():
            caller.close()
        self._threads.shutdown(wait=False, cancel_futures=True)


_OUTCOME = {"timeout": "timed out", "raised": "raised", "crashed": "crashed"}
