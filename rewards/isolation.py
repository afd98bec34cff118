"""Reward calls in worker processes that can be killed: the hard per-sample timeout.

A thread running a hung synchronous reward cannot be stopped, so rewards run (by default) in
a pebble ProcessPool: a call past its timeout has its worker process killed and replaced, a
call that crashes the interpreter (segfault, os._exit) ends its worker, and neither touches
the caller. Workers are spawned (safe from threaded callers such as Ray actors; as with any
spawned process, the caller's main script must guard its work with `if __name__ ==
"__main__"`) and receive the reward once, cloudpickled, so rewards defined in scripts or
tests work as well as importable ones. A worker whose caller died exits on its own.
"""
from __future__ import annotations

import asyncio
import inspect
import multiprocessing as mp
import os
import threading
import time
import weakref
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable

from pebble import ProcessExpired, ProcessPool

_reward: Callable[..., Any] | None = None  # the reward, in a worker process


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)  # the caller died (a killed Ray actor): a hung reward must not outlive it


def _load(payload: bytes) -> None:
    """Pool initializer: unpickle the reward once per worker."""
    global _reward
    import cloudpickle

    _reward = cloudpickle.loads(payload)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()


def _call(arg: Any) -> Any:
    """One reward call in a worker (a sample, or a list of them for a batched reward)."""
    value = _reward(arg)
    if inspect.isawaitable(value):
        value = asyncio.run(_awaited(value))
    return value


async def _awaited(value: Any) -> Any:
    return await value


@dataclass
class Outcome:
    """What one call came to: kind is "ok" (value set), "timeout", "raised" or "crashed"."""

    kind: str
    value: Any = None
    error: str = ""


class ProcessCaller:
    """Calls one reward in up to `max_workers` killable worker processes."""

    def __init__(self, fn: Callable[..., Any], max_workers: int) -> None:
        import cloudpickle

        self._payload = cloudpickle.dumps(fn)  # fails here, in the caller, if fn cannot ship
        self.max_workers = max_workers
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    def _get_pool(self) -> ProcessPool:
        with self._lock:
            if self._pool is None or not self._pool.active:
                self._pool = ProcessPool(max_workers=self.max_workers, initializer=_load,
                                         initargs=(self._payload,),
                                         context=mp.get_context("spawn"))
                self._finalizer = weakref.finalize(self, _stop, self._pool)
            return self._pool

    def call_all(self, args: list[Any], timeouts: list[float]) -> list[Outcome]:
        """Call the reward on each arg (concurrently, `max_workers` at a time); each call's
        clock starts when a worker picks it up."""
        pool = self._get_pool()
        futures = [pool.schedule(_call, args=(a,), timeout=t) for a, t in zip(args, timeouts)]
        out = []
        for future, timeout in zip(futures, timeouts):
            try:
                out.append(Outcome("ok", future.result()))
            except FutureTimeout:
                out.append(Outcome("timeout", error=f"no result within {timeout}s (worker killed)"))
            except ProcessExpired as e:
                out.append(Outcome("crashed", error=f"worker process died ({_exit_text(e.exitcode)})"))
            except Exception as e:  # noqa: BLE001 - the reward's own exception, scored 0
                out.append(Outcome("raised", error=f"{type(e).__name__}: {e}"))
        return out

    def close(self) -> None:
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._pool = None


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        import signal

        try:
            return signal.Signals(-code).name
        except ValueError:
            pass
    return f"exit code {code}"


def _stop(pool: ProcessPool) -> None:
    pool.stop()
    pool.join()
