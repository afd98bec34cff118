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


@dataclass
class MinitronSSMConfig:
    """Minitron-SSM on a NemotronH hybrid: parent -> activation importance -> candidate
    children under a parameter budget, ranked by KL before distillation -> short KD of the
    best few -> full logit KD of the winner (and of a random-pruned child of the same
    shape) -> MiniPuzzle layer search -> served comparison. `python recipes/minitron_ssm.py`."""

    run_dir: str | None = None
    torch_threads: int = 1
    parent_dir: str | None = None  # a trained NemotronH checkpoint; null: the tiny hybrid parent
    parent_preset: str = "tiny-hybrid"  # core/tiny_hybrid.py
    parent_steps: int = 300  # training of the tiny hybrid parent (cached under REFORGE_HOME)
    parent_lr: float = 3e-3
    parent_batch_size: int = 16
    seed: int = 0
    calib_samples: int = 64  # importance (activations)
    score_samples: int = 16  # depth scores, candidate ranking, MiniPuzzle scores
    param_ratio: float = 0.55  # child parameters <= param_ratio x parent
    min_param_ratio: float = 0.4  # candidates smaller than this are not considered
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 224, 192, 160])
    mamba_heads: list[int] = field(default_factory=lambda: [16, 12, 8])  # multiples of n_groups
    mamba_head_dims: list[int] = field(default_factory=lambda: [32])
    ffn_sizes: list[int] = field(default_factory=lambda: [1024, 768, 512])
    layers_dropped: list[int] = field(default_factory=lambda: [0, 2, 4])  # by logit-NMSE, never attention
    top_candidates: int = 3  # short KD for this many, best KL first
    short_kd_steps: int = 20
    kd_steps: int = 200  # total KD steps of the chosen child (short KD included)
    kd_lr: float = 1e-3
    kd_batch_size: int = 16
    kd_samples: int = 2000
    random_baseline: bool = True  # a random-pruned child of the same shape, same KD
    minipuzzle: bool = True
    minipuzzle_memory_ratio: float = 0.8  # MiniPuzzle budget: this share of the parent's memory
    eval_samples: int = 200
    cost: CostConfig = field(default_factory=lambda: CostConfig(batch_size=64, prompt_len=64, decode_tokens=32))
    served_rounds: int = 2
