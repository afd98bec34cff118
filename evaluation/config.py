"""EvalConfig: what `recipes/evaluate.py` and `reforge eval` read (YAML + key=value)."""
from __future__ import annotations

from dataclasses import dataclass, field

from core.engines.factory import ENGINES


@dataclass
class ModeSampling:
    """Sampling for one reasoning mode. temperature 0 is greedy (then one sample is drawn:
    more would be copies, and pass@k of a deterministic policy is its pass@1)."""

    temperature: float = field(metadata={"help": "sampling temperature; 0 = greedy (one sample)"})
    top_p: float = field(metadata={"help": "nucleus sampling; 1 = off"})


@dataclass
class EvalConfig:
    """Offline evaluation of a model directory: generate, score with the training rewards,
    report pass@k / mean@n / cons@k per suite and mode (see evaluation/README.md)."""

    model: str = field(default="", metadata={"help": "HF model directory (required unless `compare` is given)"})
    tasks: list[str] = field(default_factory=lambda: ["math", "code"], metadata={"help": "see evaluation/suites.py"})
    modes: list[str] = field(default_factory=lambda: ["on", "off"], metadata={"help": (
        "reasoning modes to evaluate (on | off)")})
    n: int = field(default=8, metadata={"help": "samples per prompt in sampled modes"})
    ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8], metadata={"help": "k for pass@k and cons@k (k <= n)"})
    sampling_on: ModeSampling = field(default_factory=lambda: ModeSampling(0.6, 0.95), metadata={"help": (
        "The Llama-Nemotron protocol: `on` T=0.6 top-p 0.95, `off` greedy.")})
    sampling_off: ModeSampling = field(default_factory=lambda: ModeSampling(0.0, 1.0), metadata={"help": (
        "the `off` mode's sampling (greedy by default)")})
    max_tokens: int = field(default=256, metadata={"help": "generation budget per sample"})
    seed: int = field(default=0, metadata={"help": "sampling seed (per request, so results do not depend on batching)"})
    num_math: int = field(default=64, metadata={"help": "synthetic math test problems"})
    num_code: int = field(default=32, metadata={"help": "synthetic code test problems"})
    synth_seed: int = field(default=1, metadata={"help": (
        "seed of the synthetic test split (`reforge data synth` uses train seed + 1)")})
    respect_row_reasoning: bool = field(default=False, metadata={"help": (
        "user JSONL: evaluate a row only in its own `reasoning` mode")})
    on_error: str = field(default="skip", metadata={"help": (
        "malformed user rows: skip (and count) or raise before generating")})
    engine: str = field(default="vllm", metadata={"help": (
        "auto | vllm | hf (core.engines.factory: vllm where it does not import is an error)")})
    num_engines: int = field(default=1, metadata={"help": (
        "> 1: that many vLLM engines in Ray actors share the prompts")})
    max_model_len: int = field(default=1024, metadata={"help": (
        "prompt + completion tokens per sequence (the engines' context)")})
    kv_cache_gib: float = field(default=1.0, metadata={"help": "vLLM-CPU KV-cache budget in GiB"})
    chunk_size: int = field(default=32, metadata={"help": (
        "prompts generated, scored and stored together; the unit of resumption")})
    reward_timeout_s: float = field(default=10.0, metadata={"help": (
        "per sample; a timeout or an exception scores 0 and is counted")})
    run_dir: str = field(default="", metadata={"help": (
        "an existing run directory resumes it; empty: a new one under runs_root()")})
    name: str = field(default="eval", metadata={"help": "run name: the run directory is runs/<name>-<time>"})
    compare: list[str] = field(default_factory=list, metadata={"help": (
        "two run dirs: write a side-by-side report instead")})

    def sampling(self, mode: str) -> ModeSampling:
        return self.sampling_on if mode == "on" else self.sampling_off

    def samples(self, mode: str) -> int:
        return 1 if self.sampling(mode).temperature == 0.0 else self.n

    def validate(self) -> None:
        """Errors a user can fix, raised before any model is loaded."""
        if self.compare:
            if len(self.compare) != 2:
                raise ValueError(f"compare: expected two run directories, got {len(self.compare)}")
            return
        if not self.model:
            raise ValueError("model: required (a model directory)")
        bad = [m for m in self.modes if m not in ("on", "off")]
        if bad or not self.modes:
            raise ValueError(f"modes: expected a non-empty subset of [on, off], got {self.modes}")
        if self.n < 1 or not self.ks or min(self.ks) < 1:
            raise ValueError("n and every k must be >= 1")
        if self.engine not in ENGINES:
            raise ValueError(f"engine: expected one of {list(ENGINES)}, got {self.engine!r}")
        if self.on_error not in ("skip", "raise"):
            raise ValueError(f"on_error: expected skip or raise, got {self.on_error!r}")
        if not self.tasks:
            raise ValueError("tasks: at least one task suite")

    def protocol(self) -> dict:
        """What decides the numbers; a resumed run must match it exactly."""
        return {"model": self.model, "tasks": list(self.tasks), "n": self.n, "max_tokens": self.max_tokens,
                "seed": self.seed, "num_math": self.num_math, "num_code": self.num_code,
                "synth_seed": self.synth_seed, "respect_row_reasoning": self.respect_row_reasoning,
                "sampling": {m: {"temperature": self.sampling(m).temperature, "top_p": self.sampling(m).top_p,
                                 "samples": self.samples(m)} for m in ("on", "off")}}
