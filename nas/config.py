"""Typed settings of the Puzzle pipeline (recipes/configs/puzzle_*.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CostConfig:
    batch_size: int = 64  # the decode scenario: throughput at this batch (Puzzle measured at 256)
    prompt_len: int = 64
    decode_tokens: int = 32
    repeats: int = 2
    rounds: int = 1  # round-robin passes over the measured models; best round kept
    dtype: str = "float32"  # serving dtype (bfloat16 on GPUs); also sets the analytic memory


@dataclass
class BudgetConfig:
    """Constraints for the MIP; a field left null is not constrained."""

    speedup: float | None = 1.7  # decode-step budget = parent's predicted step / speedup
    decode_ms: float | None = None  # absolute decode-step budget (overrides speedup)
    prefill_ms: float | None = None
    memory_mib: float | None = None
    num_params: float | None = None
    throughput_tokens_per_s: float | None = None
    seq_len: int = 128  # prefill + generation, for the KV-cache memory term


@dataclass
class PuzzleConfig:
    """Puzzle NAS: parent -> block library (init + BLD) -> scores + measured costs -> MIP
    -> child -> global KD -> served comparison. `python recipes/puzzle_nas.py`."""

    run_dir: str | None = None
    torch_threads: int = 0  # 0: torch's default; 1 wastes less CPU on a crowded shared machine
    parent_dir: str | None = None  # a trained Llama or nemotron-nas checkpoint; null: the tiny NAS parent
    parent_steps: int = 80  # training of the tiny NAS parent (cached under REFORGE_HOME)
    seed: int = 0
    calib_samples: int = 32
    score_samples: int = 8
    ffn_fractions: list[float] = field(default_factory=lambda: [1.0, 0.75, 0.5, 0.25])
    linear_variants: bool = False  # vLLM ignores replace_with_linear: keep off for a vLLM-served child
    bld_steps: int = 40
    bld_lr: float = 1e-3
    bld_coupled: bool = False
    use_ray: bool = True
    cost: CostConfig = field(default_factory=CostConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    batch_sizes: list[int] = field(default_factory=lambda: [64])
    metric: str = "kl_div"
    num_solutions: int = 1
    diversity: float = 0.8
    gkd_steps: int = 60
    gkd_lr: float = 3e-4
    gkd_samples: int = 1000
    eval_samples: int = 100
    served_rounds: int = 2
