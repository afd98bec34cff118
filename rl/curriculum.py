"""Prompt ordering for GRPO: uniform shuffling or the Llama-Nemotron Gaussian curriculum.

The curriculum (METHODS §1.6, "progressive batching") bins prompts by their pre-computed
pass rate and fills each batch after a Gaussian over pass rates whose centre moves from
easy (high pass rate) to hard (low) across the run; slots the Gaussian cannot fill go to the
bins with the most prompts left, and each batch is shuffled. All state is plain data so a
resumed run continues with the same batches.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CurriculumConfig:
    kind: str = field(default="gaussian", metadata={"help": (
        "gaussian: batches follow a Gaussian over pass rates moving from easy to hard | uniform: shuffled")})
    sigma: float = field(default=0.15, metadata={"help": (
        "gaussian: width of the pass-rate window around the target difficulty (smaller = stricter)")})
    bins: int = field(default=8, metadata={"help": (
        "pass rates are quantised to k/bins (the paper estimated with 8 samples)")})


@dataclass
class PromptSampler:
    """Draws batches of prompt indices without replacement; a new epoch refills the pool."""

    pass_rates: list[float]
    batch_size: int
    total_batches: int
    cfg: CurriculumConfig = field(default_factory=CurriculumConfig)
    seed: int = 0
    batches_drawn: int = 0
    epoch: int = 0

    def __post_init__(self) -> None:
        if self.cfg.kind not in ("gaussian", "uniform"):
            raise ValueError(f"curriculum.kind must be 'gaussian' or 'uniform', got {self.cfg.kind!r}")
        if not self.pass_rates:
            raise ValueError("no prompts to sample from")
        self._rng = random.Random(self.seed)
        self._remaining: dict[float, list[int]] = {}
        self._refill()

    def _bin(self, p: float) -> float:
        return round(p * self.cfg.bins) / self.cfg.bins

    def _refill(self) -> None:
        self._remaining = {}
        for i, p in enumerate(self.pass_rates):
            self._remaining.setdefault(self._bin(p), []).append(i)
        for idx in self._remaining.values():
            self._rng.shuffle(idx)

    def centre(self, t: int) -> float:
        """mu_t moves linearly from the easiest to the hardest bin present."""
        bins = sorted({self._bin(p) for p in self.pass_rates})
        hi, lo = bins[-1], bins[0]
        frac = t / max(self.total_batches - 1, 1)
        return hi - (hi - lo) * min(frac, 1.0)

    def target_weights(self, t: int) -> dict[float, float]:
        bins = sorted({self._bin(p) for p in self.pass_rates})
        mu = self.centre(t)
        w = {b: math.exp(-((b - mu) ** 2) / (2 * self.cfg.sigma ** 2)) for b in bins}
        z = sum(w.values())
        return {b: v / z for b, v in w.items()}

    def _take(self, b: float, n: int) -> list[int]:
        taken, self._remaining[b] = self._remaining[b][:n], self._remaining[b][n:]
        return taken

    def next_batch(self) -> list[int]:
        if sum(len(v) for v in self._remaining.values()) < self.batch_size:
            self.epoch += 1
            self._refill()
        n_total = self.batch_size
        batch: list[int] = []
        if self.cfg.kind == "uniform":
            pool = [i for v in self._remaining.values() for i in v]
            self._rng.shuffle(pool)
            chosen = set(pool[:n_total])
            for b in self._remaining:
                self._remaining[b] = [i for i in self._remaining[b] if i not in chosen]
            batch = pool[:n_total]
        else:
            for b, w in self.target_weights(self.batches_drawn).items():
                batch += self._take(b, min(round(w * n_total), len(self._remaining.get(b, [])), n_total - len(batch)))
            while len(batch) < n_total:  # fill from the fullest bins
                b = max(self._remaining, key=lambda k: len(self._remaining[k]))
                batch += self._take(b, 1)
        self._rng.shuffle(batch)
        self.batches_drawn += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"batches_drawn": self.batches_drawn, "epoch": self.epoch,
                "remaining": {str(k): v for k, v in self._remaining.items()}, "rng": self._rng.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches_drawn, self.epoch = state["batches_drawn"], state["epoch"]
        self._remaining = {float(k): list(v) for k, v in state["remaining"].items()}
        rng = state["rng"]
        self._rng.setstate((rng[0], tuple(rng[1]), rng[2]))
