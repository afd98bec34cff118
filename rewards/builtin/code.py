"""The code reward: the completion's Python block runs against the row's unit tests in the
sandbox. Score: 1.0 when every test passes (mode="all"), or the fraction passed.

The harness reads the solution, the tests and a per-run nonce from stdin before running any
of the solution, and reports results on one nonce-tagged stdout line, so ordinary output of
the solution cannot be mistaken for results. (It separates output, it is not a defence
against a solution that inspects the harness's frames; the sandbox protects the host.)
"""
from __future__ import annotations

import json
import secrets
import threading
from typing import Any

from ..registry import reward
from ..sample import RewardResult, RewardSample
from ..sandbox import Limits, Sandbox, SandboxClient
from .extract import answer_region, code_block

HARNESS = '''
import json, sys
_job = json.loads(sys.stdin.read())
_ns = {"__name__": "solution"}
_results = []
try:
    exec(compile(_job["code"], "solution.py", "exec"), _ns)
except BaseException as _e:
    _results = [False] * len(_job["tests"])
    _error = type(_e).__name__ + ": " + str(_e)
else:
    _error = None
    for _test in _job["tests"]:
        try:
            exec(compile(_test, "test", "exec"), _ns)
            _results.append(True)
        except BaseException as _e:
            _results.append(False)
            _error = _error or (type(_e).__name__ + ": " + str(_e))
sys.stdout.flush()
print("\\n" + _job["nonce"] + json.dumps({"passed": _results, "error": _error}), flush=True)
'''

_sandbox: Sandbox | None = None
_lock = threading.Lock()


def _default_sandbox() -> Sandbox:
    global _sandbox
    with _lock:
        if _sandbox is None:
            _sandbox = Sandbox(Limits(timeout_s=10, cpu_s=10, memory_mb=512))
        return _sandbox


def run_tests(code: str, tests: list[str], limits: Limits | None = None,
              sandbox_url: str | None = None) -> dict[str, Any]:
    """Run `tests` against `code` in the sandbox: {"passed": [bool], "error", "verdict"}."""
    nonce = secrets.token_hex(16)
    job = json.dumps({"code": code, "tests": tests, "nonce": nonce})
    runner = SandboxClient(sandbox_url) if sandbox_url else _default_sandbox()
    verdict = runner.run(HARNESS, stdin=job, limits=limits)
    summary = {"exit_code": verdict.exit_code, "timed_out": verdict.timed_out,
               "signal": verdict.signal, "resource": verdict.resource,
               "seconds": verdict.seconds, "backend": verdict.backend,
               "isolated": verdict.isolated}
    for line in reversed(verdict.stdout.splitlines()):
        if line.startswith(nonce):
            report = json.loads(line[len(nonce):])
            return {**report, "verdict": summary}
    return {"passed": [False] * len(tests), "verdict": summary,
            "error": (verdict.stderr.strip().splitlines() or ["no result from the harness"])[-1]}


@reward("code", runs_in="caller")  # the sandbox kills the program at its wall clock
def code_reward(sample: RewardSample, mode: str = "all", timeout_s: float = 10.0,
                sandbox_url: str | None = None) -> RewardResult:
    """Tests come from reward_spec["tests"] (assert statements using the entry point)."""
    if mode not in ("all", "fraction"):
        raise ValueError(f"code reward: mode must be 'all' or 'fraction', got {mode!r}")
    tests = sample.reward_spec.get("tests")
    if not isinstance(tests, list) or not tests:
        raise KeyError(f"sample {sample.id}: code reward needs a non-empty reward_spec['tests']")
    region = answer_region(sample.completion, sample.reasoning)
    if region is None:
        return RewardResult(0.0, {"reason": "reasoning never closed (no </think>)"})
    code = code_block(region)
    if code is None:
        return RewardResult(0.0, {"reason": "no code block"})
    limits = Limits(timeout_s=timeout_s, cpu_s=max(1, int(timeout_s)), memory_mb=512)
    report = run_tests(code, tests, limits, sandbox_url)
    passed = sum(report["passed"])
    total = len(tests)
    score = passed / total if mode == "fraction" else float(passed == total)
    return RewardResult(score, {"passed": passed, "total": total, "error": report.get("error"),
                                "verdict": report["verdict"]})
