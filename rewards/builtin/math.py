"""The math reward: the final answer verified against the gold answer with math-verify.

math-verify's own timeout uses signal.alarm, which raises inside threads and threaded or
async Ray actors, and without it one pathological input ran for over a minute. So every
verification runs in a worker process; a worker that overruns its per-sample timeout is
killed and replaced, and the sample scores 0.
"""
from __future__ import annotations

import multiprocessing as mp
import queue
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ..registry import reward
from ..sample import RewardResult, RewardSample
from .extract import answer_region, final_answer


def _worker_main(conn: Connection) -> None:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    conn.send("ready")
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        pred_text, gold_text = msg
        try:
            gold = parse(f"${gold_text}$", configs) or parse(gold_text, configs)
            pred = parse(f"$\\boxed{{{pred_text}}}$", configs) or parse(pred_text, configs)
            correct = bool(gold and pred and verify(gold, pred, allow_set_relation_comp=True))
            conn.send({"correct": correct, "gold": str(gold[0]) if gold else None,
                       "parsed": str(pred[0]) if pred else None})
        except Exception as e:  # noqa: BLE001 - a sympy crash is a wrong answer, not a dead worker
            conn.send({"correct": False, "error": f"{type(e).__name__}: {e}"})


@dataclass
class _Worker:
    process: Any
    conn: Connection


class MathVerifier:
    """A fixed set of spawned verifier processes; each call takes one, or waits for one."""

    def __init__(self, workers: int = 2, start_timeout_s: float = 120.0) -> None:
        if workers < 1:
            raise ValueError(f"MathVerifier needs at least one worker, got {workers}")
        self._ctx = mp.get_context("spawn")  # forking a threaded process can deadlock
        self._start_timeout_s = start_timeout_s
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._size = workers
        self._started = 0
        self._lock = threading.Lock()
        # (pred, gold) -> verdict. A group's samples often share an answer, and `math` and
        # `math_steps` both verify the same completion; only finished verdicts are kept.
        self._verdicts: dict[tuple[str, str], dict[str, Any]] = {}

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(child,), daemon=True,
                                 name="reforge-math-verify")
        proc.start()
        child.close()
        try:
            ready = parent.poll(self._start_timeout_s) and parent.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            proc.kill()
            proc.join()
            parent.close()
            raise RuntimeError(f"math-verify worker did not start within {self._start_timeout_s}s "
                               f"(exit code {proc.exitcode})")
        return _Worker(proc, parent)

    def _spawn_counted(self) -> _Worker:
        """A new worker in a slot already counted in `_started`; the slot is given back if the
        start fails, so a failed start never shrinks the pool (callers would wait forever)."""
        try:
            return self._spawn()
        except BaseException:
            with self._lock:
                self._started -= 1
            raise

    def _take(self) -> _Worker:
        with self._lock:
            spawn = self._idle.empty() and self._started < self._size
            if spawn:
                self._started += 1
        return self._spawn_counted() if spawn else self._idle.get()

    def verify(self, pred: str, gold: str, timeout_s: float) -> dict[str, Any]:
        """{"correct": bool, ...}; {"correct": False, "timed_out": True} after a kill."""
        cached = self._verdicts.get((pred, gold))
        if cached is not None:
            return cached
        result = self._verify_in_worker(pred, gold, timeout_s)
        if not result.get("timed_out"):
            if len(self._verdicts) >= 65536:
                self._verdicts.clear()
            self._verdicts[(pred, gold)] = result
        return result

    def _verify_in_worker(self, pred: str, gold: str, timeout_s: float) -> dict[str, Any]:
        worker = self._take()
        try:
            worker.conn.send((pred, gold))
            if worker.conn.poll(timeout_s):
                result = worker.conn.recv()
                self._idle.put(worker)
                return result
        except (EOFError, OSError):
            pass
        worker.process.kill()
        worker.process.join()
        worker.conn.close()
        self._idle.put(self._spawn_counted())
        return {"correct": False, "timed_out": True}

    def close(self) -> None:
        while not self._idle.empty():
            worker = self._idle.get()
            worker.process.kill()
            worker.process.join()


_default: MathVerifier | None = None
_default_lock = threading.Lock()


def default_verifier() -> MathVerifier:
    global _default
    with _default_lock:
        if _default is None:
            _default = MathVerifier(workers=2)
        return _default


@reward("math", runs_in="caller")  # verification runs in killable worker processes
def math_reward(sample: RewardSample, timeout_s: float = 5.0) -> RewardResult:
    """1.0 when the final answer equals the gold answer (`reward_spec["answer"]`), else 0.0."""
    if "answer" not in sample.reward_spec:
        raise KeyError(f"sample {sample.id}: math reward needs reward_spec['answer']")
    region = answer_region(sample.completion, sample.reasoning)
    if region is None:
        return RewardResult(0.0, {"reason": "reasoning never closed (no </think>)"})
    pred = final_answer(region)
    if pred is None:
        return RewardResult(0.0, {"reason": "no answer found"})
    verdict = default_verifier().verify(pred, str(sample.reward_spec["answer"]), timeout_s)
    return RewardResult(1.0 if verdict["correct"] else 0.0, {"extracted": pred, **verdict})
