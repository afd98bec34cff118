"""Engines in Ray actors behind one Generator: RL's generators and evaluation's multi-engine runs.

Prompts are split over the engines and completions come back grouped by prompt, in
request order; requests carry their own seed, so the split does not change the samples.
Weights arrive either as object-store buckets (`update_weights`) or over a weight group
(`open_weight_group` / `receive_weight_buckets`); rl.weight_transport drives both.

An engine actor that dies while it generates (killed, OOM) is started again with the same
settings, seed and placement, and the prompts it had not finished are generated again on
another engine (the same samples: each request carries its own seed). `faults` counts both.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterator

import ray

from core import peak_memory
from core.engines.base import Completion, SamplingSettings
from core.engines.factory import EngineSettings, make_engine
from core.engines.weight_group import trim_heap

log = logging.getLogger(__name__)


class EngineWorker:
    """One engine, hosted in a Ray actor by EngineGroup."""

    def __init__(self, model_dir: str, settings: EngineSettings, seed: int = 0):
        self.engine = make_engine(model_dir, settings, seed=seed)

    def kind(self) -> str:
        from core.engines.hf_engine import HFEngine

        return "hf" if isinstance(self.engine, HFEngine) else "vllm"

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[Completion]:
        return self.engine.generate(prompts, sampling)

    def prompt_logprobs(self, sequences: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        return self.engine.prompt_logprobs(sequences, prompt_lens)

    def update_weights(self, buckets: list[Any]) -> int:
        """Load object-store buckets (refs, or plain dicts) one after another; returns bytes."""
        received = 0
        for b in buckets:
            part = ray.get(b) if isinstance(b, ray.ObjectRef) else b
            received += sum(t.numel() * t.element_size() for t in part.values())
            self.engine.update_weights(part)
            del part
            trim_heap()
        return received

    def group_ranks(self) -> int:
        return self.engine.group_ranks

    def open_weight_group(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        self.engine.open_weight_group(host, port, rank_offset, world_size)

    def receive_weight_buckets(self, buckets: list) -> int:
        return self.engine.receive_weight_buckets(buckets)

    def close_weight_group(self) -> None:
        self.engine.close_weight_group()

    def start_peak_memory(self) -> None:
        self._peak = peak_memory.PeakWindow()
        self._peak.start()

    def stop_peak_memory(self) -> peak_memory.Peak:
        return self._peak.stop()

    def sleep(self, level: int = 1) -> None:
        self.engine.sleep(level)

    def wake(self) -> None:
        self.engine.wake()

    def shutdown(self) -> None:
        """Stop the engine core inside the actor: killing it first leaks /dev/shm segments."""
        if hasattr(self.engine, "shutdown"):
            self.engine.shutdown()


def _round_robin(n: int, parts: int) -> list[list[int]]:
    return [list(range(r, n, parts)) for r in range(parts)]


class EngineFailedError(RuntimeError):
    """An engine kept dying (or could not start again): generation cannot complete."""


@dataclass
class GenerationFaults:
    """What an engine group survived (`EngineGroup.faults`: over its life)."""

    restarts: int = 0  # engine actors found dead and started again
    regenerated_prompts: int = 0  # prompts generated again because their engine died first


@dataclass
class Chunk:
    """Prompts for one engine call; `engine` is where it goes first, `tag` is the caller's."""

    prompts: list[list[int]]
    sampling: SamplingSettings
    engine: int
    tag: Any = None


class EngineGroup:
    """`num_engines` EngineWorker actors; `kind` is the engine they run (vllm | hf)."""

    max_chunk_attempts = 3  # a chunk whose engine died this many times stops the call

    def __init__(self, model_dir: str, settings: EngineSettings, num_engines: int = 1, seed: int = 0,
                 num_cpus: float = 1.0, num_gpus: float = 0.0, resources: dict[str, float] | None = None):
        self._actor = ray.remote(EngineWorker).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                                       resources=resources or None)
        self._model_dir, self.settings, self._seed = model_dir, settings, seed
        self.workers = [self._spawn(i) for i in range(num_engines)]
        self.kind = ray.get(self.workers[0].kind.remote())  # raises the engine's own error (e.g. no vLLM)
        self.faults = GenerationFaults()
        self._reported = GenerationFaults()

    def take_faults(self) -> GenerationFaults:
        """What was survived since the last call (a restart during a weight sync shows up in
        the next rollout's figures)."""
        new = GenerationFaults(**{k: v - getattr(self._reported, k) for k, v in asdict(self.faults).items()})
        self._reported = replace(self.faults)
        return new

    def _spawn(self, i: int) -> Any:
        return self._actor.remote(self._model_dir, self.settings, seed=self._seed + i)

    # ---- surviving a dead engine ---------------------------------------------------------
    def restart(self, i: int, dead: Any = None, reason: str = "") -> None:
        """Start engine `i` again (same settings, seed, placement) unless `dead`, the handle
        that failed, was already replaced; returns once `_prepare(i)` made it ready to serve.
        vLLM-CPU runs its engine core inside the actor, so a killed engine leaves no /dev/shm
        segments (listed before and after tests/rl/test_faults.py); a live one is stopped
        with EngineWorker.shutdown."""
        if dead is not None and self.workers[i] is not dead:
            return
        log.warning("generator engine %d died (%s); starting it again", i, reason or "dead")
        try:
            ray.kill(self.workers[i])
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.workers[i] = self._spawn(i)
        self.faults.restarts += 1
        try:
            ray.get(self.workers[i].kind.remote())
        except ray.exceptions.RayError as e:
            raise EngineFailedError(f"generator engine {i} died ({reason}) and could not be started again: "
                                    f"{error_line(e)}") from e
        self._prepare(i)

    def _prepare(self, i: int) -> None:
        """Bring a restarted engine up to date before it serves (the RL generators load the
        policy's current weights and check parity here); a plain group serves `model_dir`."""

    def as_completed(self, chunks: list[Chunk]) -> Iterator[tuple[Chunk, list[Completion]]]:
        """Each chunk's completions as soon as its engine returns them. A chunk whose engine
        died is sent to another engine (the restarted one when there is no other) and the dead
        engine is started again; completions are the same as without the fault."""
        pending = {self._submit(c, c.engine): (c, c.engine, self.workers[c.engine], 1) for c in chunks}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            chunk, i, handle, attempt = pending.pop(ref)
            try:
                completions = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                reason = error_line(e)
                if attempt >= self.max_chunk_attempts:
                    raise EngineFailedError(f"{len(chunk.prompts)} prompts failed on {attempt} engines in a row; "
                                            f"last: engine {i} died ({reason})") from e
                self.faults.regenerated_prompts += len(chunk.prompts)
                target = self._least_busy(i if self.workers[i] is handle else None, [p[1] for p in pending.values()])
                if target is None:  # a single engine: it must come back first
                    self.restart(i, handle, reason)
                    target = i
                pending[self._submit(chunk, target)] = (chunk, target, self.workers[target], attempt + 1)
                self.restart(i, handle, reason)  # the others keep generating meanwhile
                continue
            yield chunk, completions

    def _submit(self, chunk: Chunk, i: int) -> ray.ObjectRef:
        return self.workers[i].generate.remote(chunk.prompts, chunk.sampling)

    def _least_busy(self, dead: int | None, busy: list[int]) -> int | None:
        """The engine with the fewest chunks in flight, other than the `dead` one."""
        alive = [j for j in range(len(self.workers)) if j != dead]
        return min(alive, key=busy.count) if alive else None

    def node_ids(self) -> list[str]:
        return ray.get([w.node_id.remote() for w in self.workers])

    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[Completion]:
        """Split prompts over the engines; completions come back grouped by prompt, in order.
        Survives an engine dying meanwhile (see `as_completed`)."""
        shards = [s for s in _round_robin(len(prompts), len(self.workers)) if s]
        chunks = [Chunk([prompts[i] for i in s], sampling, engine, s) for engine, s in enumerate(shards)]
        by_prompt: dict[int, list[Completion]] = {}
        for chunk, part in self.as_completed(chunks):
            for c in part:
                c.prompt_index = chunk.tag[c.prompt_index]
                by_prompt.setdefault(c.prompt_index, []).append(c)
        return [c for i in range(len(prompts)) for c in by_prompt[i]]

    def prompt_logprobs(self, sequences: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        """Split over the engines (the Generator call)."""
        shards = [s for s in _round_robin(len(sequences), len(self.workers)) if s]
        parts = ray.get([w.prompt_logprobs.remote([sequences[i] for i in s], [prompt_lens[i] for i in s])
                         for w, s in zip(self.workers, shards)])
        out: list[list[float]] = [[] for _ in sequences]
        for s, part in zip(shards, parts):
            for i, lp in zip(s, part):
                out[i] = lp
        return out

    def prompt_logprobs_each(self, sequences: list[list[int]], prompt_lens: list[int],
                             engines: list[int] | None = None) -> list[list[list[float]]]:
        """Each engine's (all, or those listed) answer for all sequences, so parity is checked on each."""
        workers = self.workers if engines is None else [self.workers[i] for i in engines]
        return ray.get([w.prompt_logprobs.remote(sequences, prompt_lens) for w in workers])

    def update_weights(self, buckets: list[Any]) -> list[int]:
        """Every engine loads `buckets` (object refs or dicts); returns the bytes each received."""
        return ray.get([w.update_weights.remote(buckets) for w in self.workers])

    def sleep(self, level: int = 1) -> None:
        ray.get([w.sleep.remote(level) for w in self.workers])

    def wake(self) -> None:
        ray.get([w.wake.remote() for w in self.workers])

    def shutdown(self) -> None:
        ray.get([w.shutdown.remote() for w in self.workers])
        for w in self.workers:
            ray.kill(w)


def error_line(error: BaseException) -> str:
    """The first line of an error's text (Ray's are long), for logs and metrics."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]
