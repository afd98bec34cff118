"""Calling rewards safely: every call has a timeout, and a reward that raises, hangs or
returns a non-score scores 0 for that sample, is logged with the sample id and counted.

Sync rewards run in a thread pool; a thread cannot be killed, so a sync reward that hangs
past its timeout is abandoned (and counted), not stopped. Rewards that can hang on hostile
input (math, code) therefore do their own killing in worker processes or the sandbox.
"""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

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

    def score(self, samples: list[RewardSample]) -> tuple[list[Scored], RewardMetrics]:
        start = time.monotonic()
        if self.fn.kind == "batched":
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
