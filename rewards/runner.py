"""Calling rewards safely: every call has a timeout, and a reward that raises, hangs,
crashes its process or returns a non-score scores 0 for that sample, is logged with the
sample id and counted.

By default (`runs_in="process"`) every call runs in a worker process that is killed at the
per-sample timeout (isolation.py), whatever the reward's form. A batched reward is called
on the whole batch (it may rank or batch across samples), allowed timeout_s per sample; a
batch that times out, crashes or fails is re-run one sample at a time, so only the samples
that do not finish on their own score 0. Rewards marked `runs_in="caller"` kill their own overrunning work (math's
verifier processes, code's sandbox) and run on the caller's threads, where a call past its
timeout is abandoned (and counted), since a thread cannot be killed.
"""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from .isolation import Outcome, ProcessCaller
from .metrics import RewardMetrics
from .registry import RewardFn
from .sample import RewardResult, RewardSample, as_result

log = logging.getLogger("reforge.rewards")


@dataclass
class Scored:
    result: RewardResult
    failed: bool = False
    timed_out: bool = False


def _failure(fn: RewardFn, sample_id: str, kind: str, error: str) -> Scored:
    log.warning("reward %s %s on sample %s: %s", fn.name, kind, sample_id, error)
    return Scored(RewardResult(0.0, {"error": f"{kind}: {error}"}), failed=kind != "timeout",
                  timed_out=kind == "timeout")


def _checked(fn: RewardFn, sample_id: str, value: Any) -> Scored:
    try:
        return Scored(as_result(value, fn.name))
    except TypeError as e:
        return _failure(fn, sample_id, "bad return", str(e))


class _Call:
    """One sync reward call on its own daemon thread, holding one concurrency slot."""

    def __init__(self, fn: Any, sample: RewardSample, slots: threading.Semaphore) -> None:
        self.sample = sample
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._slots = slots
        self._released = False
        self._lock = threading.Lock()
        self.started = time.monotonic()
        threading.Thread(target=self._run, args=(fn,), daemon=True).start()

    def _run(self, fn: Any) -> None:
        try:
            self.value = fn(self.sample)
        except Exception as e:  # noqa: BLE001 - any plugin error scores 0, never stops the run
            self.error = e
        finally:
            self.done.set()
            self.release()

    def expired(self, timeout_s: float) -> bool:
        return not self.done.is_set() and time.monotonic() - self.started > timeout_s

    def release(self) -> None:
        with self._lock:
            if not self._released:
                self._released = True
                self._slots.release()


class RewardRunner:
    """Scores lists of samples with one reward, `max_workers` calls at a time."""

    def __init__(self, fn: RewardFn, timeout_s: float = 30.0, max_workers: int = 4) -> None:
        self.fn = fn
        self.timeout_s = timeout_s
        self.max_workers = max_workers
        self.processes = None
        if fn.runs_in == "process":
            try:
                self.processes = ProcessCaller(fn.fn, max_workers)
            except Exception as e:  # noqa: BLE001 - any pickling error, said with the fix
                raise TypeError(f"reward {fn.name!r} cannot be sent to the worker process its calls "
                                f"run in ({type(e).__name__}: {e}); make it picklable, or mark it "
                                "runs_in='caller' if it kills its own overrunning work") from e

    def close(self) -> None:
        """Stop the worker processes (they are started again if the runner is used again)."""
        if self.processes is not None:
            self.processes.close()

    def score(self, samples: list[RewardSample]) -> tuple[list[Scored], RewardMetrics]:
        start = time.monotonic()
        if self.processes is not None:
            scored = self._in_processes(samples)
        elif self.fn.kind == "batched":
            scored = self._batched(samples)
        elif self.fn.kind == "async":
            scored = asyncio.run(self._async(samples))
        else:
            scored = self._threads(samples)
        metrics = RewardMetrics(calls=len(scored), score_sum=sum(s.result.score for s in scored),
                                failures=sum(s.failed for s in scored),
                                timeouts=sum(s.timed_out for s in scored),
                                seconds=time.monotonic() - start)
        return scored, metrics

    def _scored(self, sample: RewardSample, outcome: Outcome) -> Scored:
        if outcome.kind == "ok":
            return _checked(self.fn, sample.id, outcome.value)
        return _failure(self.fn, sample.id, outcome.kind, outcome.error)

    def _in_processes(self, samples: list[RewardSample]) -> list[Scored]:
        assert self.processes is not None
        if self.fn.kind != "batched":
            outcomes = self.processes.call_all(samples, [self.timeout_s] * len(samples))
            return [self._scored(s, o) for s, o in zip(samples, outcomes)]
        [outcome] = self.processes.call_all([samples], [self.timeout_s * len(samples)])
        values = outcome.value
        if outcome.kind == "ok" and isinstance(values, (list, tuple)) and len(values) == len(samples):
            return [_checked(self.fn, s.id, v) for s, v in zip(samples, values)]
        log.warning("batched reward %s: the batch of %d did not finish (%s); scoring its samples "
                    "one by one", self.fn.name, len(samples),
                    outcome.error or f"returned {type(values).__name__}, not {len(samples)} scores")
        scored: list[Scored] = []
        singles = self.processes.call_all([[s] for s in samples], [self.timeout_s] * len(samples))
        for sample, outcome in zip(samples, singles):
            if outcome.kind == "ok":
                one = outcome.value
                outcome = (Outcome("ok", one[0]) if isinstance(one, (list, tuple)) and len(one) == 1
                           else Outcome("bad return", error=f"returned {one!r} for one sample"))
            scored.append(self._scored(sample, outcome))
        return scored

    def _threads(self, samples: list[RewardSample]) -> list[Scored]:
        """One daemon thread per call, at most max_workers live; a call past its timeout
        gives its slot back, so one hung reward cannot stall the samples behind it."""
        slots = threading.Semaphore(self.max_workers)
        calls: list[_Call] = []
        for sample in samples:
            while not slots.acquire(timeout=0.02):
                for call in calls:
                    if call.expired(self.timeout_s):
                        call.release()
            calls.append(_Call(self.fn.fn, sample, slots))
        out = []
        for call in calls:
            if call.done.wait(max(0.0, call.started + self.timeout_s - time.monotonic())):
                if call.error is not None:
                    e = call.error
                    out.append(_failure(self.fn, call.sample.id, "raised", f"{type(e).__name__}: {e}"))
                else:
                    out.append(_checked(self.fn, call.sample.id, call.value))
            else:
                call.release()
                out.append(_failure(self.fn, call.sample.id, "timeout",
                                    f"no result within {self.timeout_s}s"))
        return out

    async def _async(self, samples: list[RewardSample]) -> list[Scored]:
        gate = asyncio.Semaphore(self.max_workers)

        async def one(sample: RewardSample) -> Scored:
            async with gate:
                try:
                    value = await asyncio.wait_for(self.fn.fn(sample), self.timeout_s)
                except asyncio.TimeoutError:
                    return _failure(self.fn, sample.id, "timeout", f"no result within {self.timeout_s}s")
                except Exception as e:  # noqa: BLE001
                    return _failure(self.fn, sample.id, "raised", f"{type(e).__name__}: {e}")
                return _checked(self.fn, sample.id, value)
        return list(await asyncio.gather(*(one(s) for s in samples)))

    def _batched(self, samples: list[RewardSample]) -> list[Scored]:
        pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"reward-{self.fn.name}")
        future = pool.submit(self.fn.fn, samples)
        budget = self.timeout_s * max(1, len(samples))
        try:
            values = future.result(timeout=budget)
            if not isinstance(values, (list, tuple)) or len(values) != len(samples):
                raise TypeError(f"batched reward returned {type(values).__name__} of length "
                                f"{len(values) if hasattr(values, '__len__') else '?'} for "
                                f"{len(samples)} samples")
        except cf.TimeoutError:
            pool.shutdown(wait=False, cancel_futures=True)
            return [_failure(self.fn, s.id, "timeout", f"batch not done within {budget}s")
                    for s in samples]
        except Exception as e:  # noqa: BLE001
            pool.shutdown(wait=False)
            return [_failure(self.fn, s.id, "raised", f"{type(e).__name__}: {e}") for s in samples]
        pool.shutdown(wait=False)
        return [_checked(self.fn, s.id, v) for s, v in zip(samples, values)]
